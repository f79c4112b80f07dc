/// What one event loop's rate limit checks decided, per policy; summed at scrape time.
struct RateLimitStats: Sendable {
    var allowed: UInt64 = 0
    var limited: UInt64 = 0
    /// Checks made in this process because Redis could not answer.
    var fallbacks: UInt64 = 0
    /// Clients in the allowlist, never counted against a limit.
    var exempt: UInt64 = 0
    /// Calls to Redis (checks, and takes of a lease, on the request path or ahead of it).
    var redisCalls: UInt64 = 0
    /// Requests decided from a lease held here (allowed from its tokens, or refused until the
    /// time Redis gave), with no Redis call.
    var leased: UInt64 = 0

    static func + (lhs: RateLimitStats, rhs: RateLimitStats) -> RateLimitStats {
        RateLimitStats(allowed: lhs.allowed &+ rhs.allowed, limited: lhs.limited &+ rhs.limited,
                       fallbacks: lhs.fallbacks &+ rhs.fallbacks, exempt: lhs.exempt &+ rhs.exempt,
                       redisCalls: lhs.redisCalls &+ rhs.redisCalls, leased: lhs.leased &+ rhs.leased)
    }

    static func render(_ stats: [RateLimitStats], policies: [String], keys: Int) -> String {
        var text = "# TYPE gateway_rate_limit_requests_total counter\n"
        for (name, stat) in zip(policies, stats) {
            for (result, value) in [("allowed", stat.allowed), ("limited", stat.limited), ("exempt", stat.exempt)] {
                text += "gateway_rate_limit_requests_total{policy=\"\(name)\",result=\"\(result)\"} \(value)\n"
            }
        }
        text += "# TYPE gateway_rate_limit_fallbacks_total counter\n"
        for (name, stat) in zip(policies, stats) {
            text += "gateway_rate_limit_fallbacks_total{policy=\"\(name)\"} \(stat.fallbacks)\n"
        }
        text += "# TYPE gateway_rate_limit_redis_calls_total counter\n"
        for (name, stat) in zip(policies, stats) {
            text += "gateway_rate_limit_redis_calls_total{policy=\"\(name)\"} \(stat.redisCalls)\n"
        }
        text += "# TYPE gateway_rate_limit_leased_total counter\n"
        for (name, stat) in zip(policies, stats) {
            text += "gateway_rate_limit_leased_total{policy=\"\(name)\"} \(stat.leased)\n"
        }
        text += "# TYPE gateway_rate_limit_local_keys gauge\ngateway_rate_limit_local_keys \(keys)\n"
        return text
    }
}
