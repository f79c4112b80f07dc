import Cache
import Redis

/// The Redis client's metrics in Prometheus text format (whoever uses it: the cache, rate limits).
extension RedisStats {
    static func render(_ redis: RedisStats) -> String {
        var text = "# TYPE gateway_redis_connected gauge\ngateway_redis_connected \(redis.connected ? 1 : 0)\n"
        text += "# TYPE gateway_redis_circuit_open gauge\ngateway_redis_circuit_open \(redis.breakerOpen ? 1 : 0)\n"
        text += "# TYPE gateway_redis_circuit_openings_total counter\ngateway_redis_circuit_openings_total \(redis.breakerOpenings)\n"
        text += "# TYPE gateway_redis_connects_total counter\ngateway_redis_connects_total{result=\"ok\"} \(redis.connects)\n"
        text += "gateway_redis_connects_total{result=\"failed\"} \(redis.connectFailures)\n"
        text += "# TYPE gateway_redis_redirects_total counter\ngateway_redis_redirects_total \(redis.redirects)\n"
        text += "# TYPE gateway_redis_topology_refreshes_total counter\ngateway_redis_topology_refreshes_total \(redis.topologyRefreshes)\n"
        // Each event loop's client sees a change of master, so one failover counts once per loop.
        text += "# TYPE gateway_redis_master_changes_total counter\ngateway_redis_master_changes_total \(redis.masterChanges)\n"
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
