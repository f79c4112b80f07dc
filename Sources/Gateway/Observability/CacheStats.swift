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

    /// The Redis client's metrics (whoever uses it: the cache, rate limits).
    static func renderRedis(_ redis: RedisStats) -> String {
        var text = "# TYPE gateway_redis_connected gauge\ngateway_redis_connected \(redis.connected ? 1 : 0)\n"
        text += "# TYPE gateway_redis_circuit_open gauge\ngateway_redis_circuit_open \(redis.breakerOpen ? 1 : 0)\n"
        text += "# TYPE gateway_redis_circuit_openings_total counter\ngateway_redis_circuit_openings_total \(redis.breakerOpenings)\n"
        text += "# TYPE gateway_redis_connects_total counter\ngateway_redis_connects_total{result=\"ok\"} \(redis.connects)\n"
        text += "gateway_redis_connects_total{result=\"failed\"} \(redis.connectFailures)\n"
        text += "# TYPE gateway_redis_errors_total counter\n"
        for kind in ["timeout", "connection", "unavailable", "reply", "protocol"] {
            text += "gateway_redis_errors_total{kind=\"\(kind)\"} \(redis.errors[kind] ?? 0)\n"
        }
        text += "# TYPE gateway_redis_command_duration_seconds histogram\n"
        var cumulative: UInt64 = 0
        for (i, bound) in RedisStats.bucketBounds.enumerated() {
            cumulative += redis.buckets[i]
            text += "gateway_redis_command_duration_seconds_bucket{le=\"\(Double(bound) / 1e9)\"} \(cumulative)\n"
        }
        text += "gateway_redis_command_duration_seconds_bucket{le=\"+Inf\"} \(redis.replies)\n"
        text += "gateway_redis_command_duration_seconds_sum \(Double(redis.sumNanoseconds) / 1e9)\n"
        text += "gateway_redis_command_duration_seconds_count \(redis.replies)\n"
        return text
    }
}
