import Logging
import NIOConcurrencyHelpers
import NIOCore
import Redis

/// Where cached responses live: in this process (no Redis), or in Redis shared by every
/// gateway instance, optionally with a near cache in this process that Redis pub/sub keeps
/// coherent (an invalidation anywhere drops the key everywhere; a lost subscription empties
/// it). Entries of a key are one Redis hash — a field per variant (identity and Vary values)
/// plus the key's tombstone — so an invalidation is one `DEL` whoever the variants belong to.
public final class ResponseCache: Sendable {
    public struct Settings: Sendable {
        /// The in-process store's bound (the whole cache without Redis).
        public var maxBytes: Int
        /// The near cache's bound in front of Redis (0: none).
        public var nearCacheBytes: Int
        public var keyPrefix: String

        public init(maxBytes: Int, nearCacheBytes: Int, keyPrefix: String = "gw:c:") {
            self.maxBytes = maxBytes
            self.nearCacheBytes = nearCacheBytes
            self.keyPrefix = keyPrefix
        }
    }

    /// The in-process store: the whole cache, or the near cache in front of Redis.
    public let local: LocalResponseStore?
    public let redis: RedisClient?
    public let coalescer = CacheCoalescer()
    let settings: Settings
    private let nearEnabled = NIOLockedValueBox(false)
    private let subscriber: RedisSubscriber?
    private let stats = NIOLockedValueBox(Counters())
    public var invalidationChannel: String { settings.keyPrefix + "invalidations" }

    /// Counted here because they happen off the request path (pub/sub, background refreshes).
    public struct Counters: Sendable {
        public var nearInvalidations: UInt64 = 0
        public var nearFlushes: UInt64 = 0
    }

    static let storeScript = RedisScript("""
        local t = redis.call('HGET', KEYS[1], '!')
        if t then
          local a = string.find(t, ':', 1, true)
          local b = string.find(t, ':', a + 1, true)
          local lsn = string.sub(t, 1, a - 1)
          local notBefore = tonumber(string.sub(t, a + 1, b - 1))
          local untilMs = tonumber(string.sub(t, b + 1))
          if tonumber(ARGV[6]) < untilMs and (ARGV[4] < lsn or tonumber(ARGV[5]) <= notBefore) then return 0 end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        local ttl = redis.call('PTTL', KEYS[1])
        local want = tonumber(ARGV[3])
        if ttl < want then redis.call('PEXPIRE', KEYS[1], want) end
        return 1
        """)

    /// What the cache runs in Redis (for `RedisClient.warmUp`).
    public static var scripts: [RedisScript] { [storeScript, invalidateScript] }

    static let invalidateScript = RedisScript("""
        for _, k in ipairs(KEYS) do
          redis.call('DEL', k)
          redis.call('HSET', k, '!', ARGV[1])
          redis.call('PEXPIRE', k, ARGV[2])
        end
        if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
        return #KEYS
        """)

    /// - Parameter redis: the shared store; nil keeps everything in this process.
    /// - Parameter subscriberLoop: where the near cache's invalidation subscription runs.
    public init(settings: Settings, redis: RedisClient?, subscriberLoop: EventLoop?, logger: Logger) {
        self.settings = settings
        self.redis = redis
        if redis != nil {
            local = settings.nearCacheBytes > 0 ? LocalResponseStore(maxBytes: settings.nearCacheBytes) : nil
        } else {
            local = LocalResponseStore(maxBytes: settings.maxBytes)
            nearEnabled.withLockedValue { $0 = true }
        }
        if let redis, let local, let subscriberLoop {
            let prefix = settings.keyPrefix
            let enabled = nearEnabled
            let stats = self.stats
            subscriber = RedisSubscriber(
                client: redis, channel: settings.keyPrefix + "invalidations", eventLoop: subscriberLoop, logger: logger,
                onMessage: { payload in
                    let keys = String(buffer: payload).split(separator: "\n").map { String($0.dropFirst(prefix.count)) }
                    local.invalidate(keys, tombstone: nil, now: 0)
                    stats.withLockedValue { $0.nearInvalidations &+= UInt64(keys.count) }
                },
                onState: { subscribed in
                    // Invalidations published while unsubscribed are lost: start from empty.
                    if !subscribed {
                        local.removeAll()
                        stats.withLockedValue { $0.nearFlushes &+= 1 }
                    }
                    enabled.withLockedValue { $0 = subscribed }
                })
        } else {
            subscriber = nil
        }
    }

    public func start() {
        subscriber?.start()
    }

    public func close() async {
        await subscriber?.close()
    }

    public var usesRedis: Bool { redis != nil }
    public var counters: Counters { stats.withLockedValue { $0 } }

    /// The in-process answer: the whole cache without Redis, the near cache (while its
    /// subscription is up) with it.
    public func lookupLocal(_ key: String, variant: String, now: Int64) -> CachedResponse? {
        guard let local, redis == nil || nearEnabled.withLockedValue({ $0 }) else { return nil }
        return local.lookup(key, variant: variant, now: now)
    }

    /// Redis's answer (a near-cache miss); a hit is kept in the near cache.
    public func lookupRedis(_ key: String, variant: String, client: RedisLoopClient, now: Int64) -> EventLoopFuture<CachedResponse?> {
        client.send(RedisCommand(key: "HGET", .string(settings.keyPrefix + key), .string(variant))).map { value in
            guard let bytes = value.bytes, let entry = CachedResponse(decoding: bytes) else { return nil }
            if let local = self.local, self.nearEnabled.withLockedValue({ $0 }), entry.usableUntil > now {
                local.store(entry, key: key, variant: variant, fetchStartedAt: entry.storedAt, now: now)
            }
            return entry
        }
    }

    /// Stores unless an invalidation since the fetch began refuses it; the future says whether
    /// it was stored (it fails when Redis does).
    public func store(_ entry: CachedResponse, key: String, variant: String, fetchStartedAt: Int64, now: Int64,
                      on eventLoop: EventLoop, client: RedisLoopClient?) -> EventLoopFuture<Bool> {
        guard redis != nil else {
            let stored = local?.store(entry, key: key, variant: variant, fetchStartedAt: fetchStartedAt, now: now) ?? false
            return eventLoop.makeSucceededFuture(stored)
        }
        guard let client else { return eventLoop.makeFailedFuture(RedisError.unavailable) }
        let ttl = max(1000, entry.usableUntil - now)
        return client.evalScript(Self.storeScript, keys: [.string(settings.keyPrefix + key)], arguments: [
            .string(variant), .bytes(entry.encoded()), .int(ttl), .string(Tombstone.hex(entry.lsn)), .int(fetchStartedAt), .int(now),
        ]).map { value in
            let stored = value.integer == 1
            if stored, let local = self.local, self.nearEnabled.withLockedValue({ $0 }) {
                local.store(entry, key: key, variant: variant, fetchStartedAt: fetchStartedAt, now: now)
            }
            return stored
        }
    }

    /// Drops every variant of `keys`, here and (through Redis) everywhere, leaving tombstones.
    /// On Redis Cluster the keys go in one script per slot (a script's keys must share one);
    /// the invalidation message is published once, by the first, and reaches every node.
    public func invalidate(_ keys: [String], tombstone: Tombstone, now: Int64, on eventLoop: EventLoop,
                           client: RedisLoopClient?) -> EventLoopFuture<Void> {
        guard !keys.isEmpty else { return eventLoop.makeSucceededVoidFuture() }
        local?.invalidate(keys, tombstone: redis == nil ? tombstone : nil, now: now)
        guard redis != nil else { return eventLoop.makeSucceededVoidFuture() }
        guard let client else { return eventLoop.makeFailedFuture(RedisError.unavailable) }
        let redisKeys = keys.map { settings.keyPrefix + $0 }
        let message = redisKeys.joined(separator: "\n")
        let groups = client.isCluster ? Dictionary(grouping: redisKeys, by: RedisSlot.of).values.map { $0 } : [redisKeys]
        let runs = groups.enumerated().map { index, group in
            client.evalScript(Self.invalidateScript, keys: group.map { .string($0) }, arguments: [
                .string(tombstone.encoded), .int(max(1000, tombstone.until - now)), .string(invalidationChannel),
                .string(index == 0 ? message : ""),
            ])
        }
        return EventLoopFuture.andAllSucceed(runs, on: eventLoop)
    }
}
