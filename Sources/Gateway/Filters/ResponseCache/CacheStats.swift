import Cache

/// What one event loop's requests did with the cache; plain integers owned by the loop,
/// summed when `/metrics` is scraped (like `RequestStats`).
struct CacheStats: Sendable {
    var hits: UInt64 = 0
    var misses: UInt64 = 0
    /// Served stale while a refresh runs (stale-while-revalidate).
    var stale: UInt64 = 0
    /// The cache was skipped: Redis unavailable, a Range request, a request body.
    var bypasses: UInt64 = 0
    /// Requests that waited for another request's fetch instead of going upstream.
    var coalesced: UInt64 = 0
    var notModified: UInt64 = 0
    var staleIfError: UInt64 = 0
    var stored: UInt64 = 0
    /// Refused by a newer invalidation (the response may predate a write).
    var storeRefused: UInt64 = 0
    var storeFailed: UInt64 = 0
    var invalidations: UInt64 = 0
    var invalidationFailures: UInt64 = 0
    var refreshes: UInt64 = 0
    /// Stale entries a 304 from the upstream confirmed (conditional revalidation).
    var revalidated: UInt64 = 0

    static func + (lhs: CacheStats, rhs: CacheStats) -> CacheStats {
        var sum = lhs
        sum.hits &+= rhs.hits
        sum.misses &+= rhs.misses
        sum.stale &+= rhs.stale
        sum.bypasses &+= rhs.bypasses
        sum.coalesced &+= rhs.coalesced
        sum.notModified &+= rhs.notModified
        sum.staleIfError &+= rhs.staleIfError
        sum.stored &+= rhs.stored
        sum.storeRefused &+= rhs.storeRefused
        sum.storeFailed &+= rhs.storeFailed
        sum.invalidations &+= rhs.invalidations
        sum.invalidationFailures &+= rhs.invalidationFailures
        sum.refreshes &+= rhs.refreshes
        sum.revalidated &+= rhs.revalidated
        return sum
    }

    /// The cache's and the Redis client's metrics in Prometheus text format.
    static func render(_ stats: CacheStats, local: (entries: Int, bytes: Int)?, counters: ResponseCache.Counters?) -> String {
        var text = "# TYPE gateway_cache_requests_total counter\n"
        for (result, value) in [("hit", stats.hits), ("miss", stats.misses), ("stale", stats.stale), ("bypass", stats.bypasses)] {
            text += "gateway_cache_requests_total{result=\"\(result)\"} \(value)\n"
        }
        text += "# TYPE gateway_cache_coalesced_total counter\ngateway_cache_coalesced_total \(stats.coalesced)\n"
        text += "# TYPE gateway_cache_not_modified_total counter\ngateway_cache_not_modified_total \(stats.notModified)\n"
        text += "# TYPE gateway_cache_stale_if_error_total counter\ngateway_cache_stale_if_error_total \(stats.staleIfError)\n"
        text += "# TYPE gateway_cache_refreshes_total counter\ngateway_cache_refreshes_total \(stats.refreshes)\n"
        text += "# TYPE gateway_cache_revalidated_total counter\ngateway_cache_revalidated_total \(stats.revalidated)\n"
        text += "# TYPE gateway_cache_stores_total counter\n"
        for (result, value) in [("stored", stats.stored), ("refused", stats.storeRefused), ("failed", stats.storeFailed)] {
            text += "gateway_cache_stores_total{result=\"\(result)\"} \(value)\n"
        }
        text += "# TYPE gateway_cache_invalidations_total counter\n"
        text += "gateway_cache_invalidations_total{result=\"ok\"} \(stats.invalidations)\n"
        text += "gateway_cache_invalidations_total{result=\"failed\"} \(stats.invalidationFailures)\n"
        if let local {
            text += "# TYPE gateway_cache_local_entries gauge\ngateway_cache_local_entries \(local.entries)\n"
            text += "# TYPE gateway_cache_local_bytes gauge\ngateway_cache_local_bytes \(local.bytes)\n"
        }
        if let counters {
            text += "# TYPE gateway_cache_near_invalidations_total counter\ngateway_cache_near_invalidations_total \(counters.nearInvalidations)\n"
            text += "# TYPE gateway_cache_near_flushes_total counter\ngateway_cache_near_flushes_total \(counters.nearFlushes)\n"
        }
        return text
    }
}
