import NIOConcurrencyHelpers

/// Tokens kept per client identity, for clients that do not send cookies or headers back (API
/// clients identified by their Authorization header or address). Identities arrive hashed.
public protocol ConsistencyStore: Sendable {
    func record(_ token: ConsistencyToken, for identity: String, now: Int64)
    func lookup(_ identity: String, now: Int64) -> ConsistencyToken?
}

/// The in-process store: sharded dictionaries behind locks (every event loop uses it), with
/// expiry and a bound on entries so a flood of identities cannot grow memory without limit.
public final class LocalConsistencyStore: ConsistencyStore {
    private let shards: [NIOLockedValueBox<[String: ConsistencyToken]>]
    private let maxEntriesPerShard: Int

    public init(shards: Int = 16, maxEntries: Int = 1_000_000) {
        self.shards = (0..<shards).map { _ in NIOLockedValueBox([:]) }
        self.maxEntriesPerShard = max(1, maxEntries / shards)
    }

    private func shard(_ identity: String) -> NIOLockedValueBox<[String: ConsistencyToken]> {
        var hash = 0
        for byte in identity.utf8.prefix(8) { hash = hash &* 31 &+ Int(byte) }
        return shards[(hash & Int.max) % shards.count]
    }

    public func record(_ token: ConsistencyToken, for identity: String, now: Int64) {
        shard(identity).withLockedValue { entries in
            if entries.count >= maxEntriesPerShard {
                entries = entries.filter { $0.value.expires > now }
                if entries.count >= maxEntriesPerShard { entries.removeAll(keepingCapacity: true) }
            }
            entries[identity] = token.merged(with: entries[identity].flatMap { $0.expires > now ? $0 : nil })
        }
    }

    public func lookup(_ identity: String, now: Int64) -> ConsistencyToken? {
        shard(identity).withLockedValue { entries in
            guard let token = entries[identity] else { return nil }
            guard token.expires > now else {
                entries[identity] = nil
                return nil
            }
            return token
        }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.withLockedValue { $0.count } } }
}
