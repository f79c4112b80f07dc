import NIOConcurrencyHelpers

/// GCRA state in this process: key → TAT, in shards with their own locks (every event loop
/// checks here). Bounded: an entry is worthless once its TAT has passed (the bucket is full
/// again), so a full shard first drops those; if it is still full, the oldest-inserted go. An
/// attacker cycling through keys costs memory up to the bound, never more.
public final class LocalRateLimiter: Sendable {
    /// A bucket: a policy and a client address (the common case, hashed as two integers), or a
    /// policy and a text key (a header's or an identity's hash).
    public struct Key: Hashable, Sendable {
        public var policy: Int
        public var address: UInt128
        public var text: String?

        public init(policy: Int, address: UInt128) {
            self.policy = policy
            self.address = address
            text = nil
        }

        public init(policy: Int, text: String) {
            self.policy = policy
            address = 0
            self.text = text
        }
    }

    private struct Shard {
        var tats: [Key: Int64] = [:]
    }

    private let shards: [NIOLockedValueBox<Shard>]
    private let maxEntriesPerShard: Int
    /// The bound it was made with (a reload keeps the table when the bound is unchanged).
    public let maxEntries: Int

    public init(maxEntries: Int = 1_000_000, shardCount: Int = 16) {
        shards = (0..<shardCount).map { _ in NIOLockedValueBox(Shard()) }
        self.maxEntries = maxEntries
        maxEntriesPerShard = max(16, maxEntries / shardCount)
    }

    /// Checks and (when allowed) takes `cost` from `key`'s bucket.
    public func check(_ key: Key, rule: GCRA, now: Int64, cost: Int = 1) -> GCRA.Outcome {
        let shard = shard(of: key)
        let bound = maxEntriesPerShard
        return shard.withLockedValue { shard in
            let stored = shard.tats[key]
            let outcome = rule.check(tat: stored.flatMap { $0 > now ? $0 : nil }, now: now, cost: cost)
            if outcome.allowed {
                if stored == nil, shard.tats.count >= bound { Self.makeRoom(&shard, now: now, bound: bound) }
                shard.tats[key] = outcome.tat
            }
            return outcome
        }
    }

    /// What `check` would answer now, without taking anything (`/admin/explain`).
    public func peek(_ key: Key, rule: GCRA, now: Int64, cost: Int = 1) -> GCRA.Outcome {
        let stored = shard(of: key).withLockedValue { $0.tats[key] }
        return rule.check(tat: stored.flatMap { $0 > now ? $0 : nil }, now: now, cost: cost)
    }

    private func shard(of key: Key) -> NIOLockedValueBox<Shard> {
        let spread = key.text.map { UInt(bitPattern: $0.hashValue) } ?? UInt(truncatingIfNeeded: key.address ^ (key.address >> 64))
        return shards[Int((spread &+ UInt(key.policy)) % UInt(shards.count))]
    }

    /// Entries held (for tests and metrics).
    public var count: Int { shards.reduce(0) { $0 + $1.withLockedValue { $0.tats.count } } }

    private static func makeRoom(_ shard: inout Shard, now: Int64, bound: Int) {
        shard.tats = shard.tats.filter { $0.value > now }
        // Still full of live buckets: drop a quarter, whichever come first.
        if shard.tats.count >= bound {
            for key in shard.tats.keys.prefix(bound / 4) { shard.tats.removeValue(forKey: key) }
        }
    }
}
