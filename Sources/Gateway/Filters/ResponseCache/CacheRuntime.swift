import Cache
import Logging
import NIOCore
import Redis
import Router

/// The response cache as the data path uses it: the store, each route's policy and
/// invalidations, compiled once.
final class CacheRuntime: Sendable {
    let store: ResponseCache
    /// Per route index: its caching rules (nil: not cached).
    let policies: [ResponseCachePolicy?]
    /// Per route index: the keys a successful write on it removes.
    let invalidations: [[CacheKeyTemplate]]
    let lockTimeout: TimeAmount
    /// `cache.control_header`, lowercased.
    let controlHeader: String
    /// How long a tombstone lasts: longer than any fetch that could have started before it.
    let tombstoneWindowMilliseconds: Int64
    /// When a write's WAL position is unknown but replicas may lag: responses fetched during this
    /// much time after the write are not stored (they could come from a replica behind it).
    let unknownPositionHoldMilliseconds: Int64

    /// - Parameter store: the store of the runtime a reload replaces, when its settings and
    ///   Redis are unchanged: its entries stay.
    init(config: GatewayConfig, redis: RedisClient?, subscriberLoop: EventLoop?, logger: Logger, store: ResponseCache? = nil) {
        policies = config.routes.map { route in
            route.cache.map { cache in
                ResponseCachePolicy(
                    ttlMilliseconds: cache.ttl.map { $0.nanoseconds / 1_000_000 },
                    staleWhileRevalidateMilliseconds: cache.staleWhileRevalidate.map { $0.nanoseconds / 1_000_000 },
                    staleIfErrorMilliseconds: cache.staleIfError.map { $0.nanoseconds / 1_000_000 },
                    maxBody: cache.maxBody.bytes, shared: cache.shared, statuses: cache.statuses, key: cache.key)
            }
        }
        invalidations = config.routes.map(\.invalidates)
        lockTimeout = config.cache.lockTimeout.timeAmount
        controlHeader = config.cache.controlHeader.lowercased()
        tombstoneWindowMilliseconds = config.upstream.responseTimeout.nanoseconds / 1_000_000 + 5_000
        let hasReplicas = config.pools.contains { $0.role == .replica }
        unknownPositionHoldMilliseconds = hasReplicas ? config.health.maxLag.nanoseconds / 1_000_000 : 0
        self.store = store ?? ResponseCache(
            settings: .init(maxBytes: config.cache.maxSize.bytes, nearCacheBytes: config.cache.nearCache.bytes, keyPrefix: config.cache.keyPrefix),
            redis: redis, subscriberLoop: subscriberLoop, logger: logger)
    }

    /// Only when some route caches or invalidates.
    static func needed(by config: GatewayConfig) -> Bool {
        config.routes.contains { $0.cache != nil || !$0.invalidates.isEmpty }
    }

    static func unixMilliseconds() -> Int64 { ConsistencyRuntime.unixMilliseconds() }

    /// The tombstone a write leaves: with the write's WAL position, fetches after it that saw
    /// the position may be stored at once; without it, none for the hold.
    func tombstone(writeLSN: LSN?, now: Int64) -> Tombstone {
        let notBefore = writeLSN == nil ? now + unknownPositionHoldMilliseconds : now
        return Tombstone(lsn: writeLSN?.value ?? 0, notBefore: notBefore, until: notBefore + tombstoneWindowMilliseconds)
    }
}
