import NIOConcurrencyHelpers

/// Responses kept in this process: the whole cache when there is no Redis, or the near cache
/// in front of it. Least recently used entries go first once `maxBytes` is reached. Sharded by
/// key, each shard behind its own lock, so event loops rarely wait on each other.
///
/// Entries of one key (one per identity and Vary values: its variants) and the key's
/// tombstone live together, so an invalidation drops every variant at once.
public final class LocalResponseStore: Sendable {
    private let shards: [NIOLockedValueBox<Shard>]

    public init(maxBytes: Int, shardCount: Int = 16) {
        let perShard = max(64 * 1024, maxBytes / shardCount)
        shards = (0..<shardCount).map { _ in NIOLockedValueBox(Shard(maxBytes: perShard)) }
    }

    private func shard(_ key: String) -> NIOLockedValueBox<Shard> {
        var hasher = Hasher()
        hasher.combine(key)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }

    public func lookup(_ key: String, variant: String, now: Int64) -> CachedResponse? {
        shard(key).withLockedValue { $0.lookup(key, variant: variant, now: now) }
    }

    /// Stores unless a tombstone of the key refuses it; returns whether it was stored.
    @discardableResult
    public func store(_ entry: CachedResponse, key: String, variant: String, fetchStartedAt: Int64, now: Int64) -> Bool {
        shard(key).withLockedValue { $0.store(entry, key: key, variant: variant, fetchStartedAt: fetchStartedAt, now: now) }
    }

    /// Drops every variant of each key and leaves `tombstone`.
    public func invalidate(_ keys: [String], tombstone: Tombstone?, now: Int64) {
        for key in keys {
            shard(key).withLockedValue { $0.invalidate(key, tombstone: tombstone, now: now) }
        }
    }

    /// Forgets everything (the near cache, when invalidations may have been missed).
    public func removeAll() {
        for shard in shards { shard.withLockedValue { $0.removeAll() } }
    }

    public var totals: (entries: Int, bytes: Int) {
        shards.reduce((0, 0)) { sum, shard in
            shard.withLockedValue { (sum.0 + $0.count, sum.1 + $0.bytes) }
        }
    }

    /// One shard: an LRU list over (key, variant) nodes in an array with a free list.
    struct Shard {
        struct Node {
            var key: String
            var variant: String
            var entry: CachedResponse?
            var size: Int
            var previous: Int
            var next: Int
        }

        struct KeyState {
            var variants: [String: Int] = [:]
            var tombstone: Tombstone?
        }

        let maxBytes: Int
        private(set) var bytes = 0
        private(set) var count = 0
        private var nodes: [Node] = []
        private var free: [Int] = []
        private var keys: [String: KeyState] = [:]
        /// Most recently used first.
        private var head = -1
        private var tail = -1
        private var tombstones = 0

        init(maxBytes: Int) { self.maxBytes = maxBytes }

        mutating func lookup(_ key: String, variant: String, now: Int64) -> CachedResponse? {
            guard let index = keys[key]?.variants[variant], let entry = nodes[index].entry else { return nil }
            if entry.usableUntil <= now {
                remove(index)
                return nil
            }
            moveToFront(index)
            return entry
        }

        mutating func store(_ entry: CachedResponse, key: String, variant: String, fetchStartedAt: Int64, now: Int64) -> Bool {
            var state = keys[key] ?? KeyState()
            if let tombstone = state.tombstone {
                if tombstone.until <= now {
                    state.tombstone = nil
                    tombstones -= 1
                } else if !tombstone.admits(lsn: entry.lsn, fetchStartedAt: fetchStartedAt, now: now) {
                    keys[key] = state
                    return false
                }
            }
            let size = entry.size + key.utf8.count + variant.utf8.count
            guard size <= maxBytes else { return false }
            if let existing = state.variants[variant] {
                bytes += size - nodes[existing].size
                nodes[existing].entry = entry
                nodes[existing].size = size
                keys[key] = state
                moveToFront(existing)
            } else {
                let node = Node(key: key, variant: variant, entry: entry, size: size, previous: -1, next: -1)
                let index: Int
                if let reused = free.popLast() {
                    nodes[reused] = node
                    index = reused
                } else {
                    nodes.append(node)
                    index = nodes.count - 1
                }
                state.variants[variant] = index
                keys[key] = state
                linkFront(index)
                bytes += size
                count += 1
            }
            while bytes > maxBytes, tail >= 0 {
                remove(tail)
            }
            return true
        }

        mutating func invalidate(_ key: String, tombstone: Tombstone?, now: Int64) {
            if let state = keys[key] {
                for index in state.variants.values { unlinkAndFree(index) }
                if state.tombstone != nil { tombstones -= 1 }
            }
            if let tombstone {
                keys[key] = KeyState(variants: [:], tombstone: tombstone)
                tombstones += 1
                if tombstones > 100_000 { pruneTombstones(now: now) }
            } else {
                keys.removeValue(forKey: key)
            }
        }

        mutating func removeAll() {
            self = Shard(maxBytes: maxBytes)
        }

        /// Bounds the tombstones (each is tiny, but a write storm over many keys leaves many):
        /// expired ones go first, and if that is not enough, every one without entries.
        private mutating func pruneTombstones(now: Int64) {
            for (key, state) in keys where state.tombstone.map({ $0.until <= now }) ?? false {
                if state.variants.isEmpty { keys.removeValue(forKey: key) } else { keys[key]?.tombstone = nil }
            }
            if keys.values.count(where: { $0.tombstone != nil }) > 50_000 {
                for (key, state) in keys where state.tombstone != nil && state.variants.isEmpty {
                    keys.removeValue(forKey: key)
                }
            }
            tombstones = keys.values.count(where: { $0.tombstone != nil })
        }

        private mutating func remove(_ index: Int) {
            let key = nodes[index].key
            let variant = nodes[index].variant
            unlinkAndFree(index)
            if var state = keys[key] {
                state.variants.removeValue(forKey: variant)
                if state.variants.isEmpty && state.tombstone == nil {
                    keys.removeValue(forKey: key)
                } else {
                    keys[key] = state
                }
            }
        }

        private mutating func unlinkAndFree(_ index: Int) {
            unlink(index)
            bytes -= nodes[index].size
            count -= 1
            nodes[index].entry = nil
            nodes[index].key = ""
            nodes[index].variant = ""
            free.append(index)
        }

        private mutating func linkFront(_ index: Int) {
            nodes[index].previous = -1
            nodes[index].next = head
            if head >= 0 { nodes[head].previous = index }
            head = index
            if tail < 0 { tail = index }
        }

        private mutating func unlink(_ index: Int) {
            let previous = nodes[index].previous
            let next = nodes[index].next
            if previous >= 0 { nodes[previous].next = next } else { head = next }
            if next >= 0 { nodes[next].previous = previous } else { tail = previous }
            nodes[index].previous = -1
            nodes[index].next = -1
        }

        private mutating func moveToFront(_ index: Int) {
            guard head != index else { return }
            unlink(index)
            linkFront(index)
        }
    }
}
