/// Request counts by status class and a latency histogram for one pool on one event loop.
///
/// These two metrics change on every request, so they are plain integers owned by the loop (no
/// atomics, no locks) and summed over loops when `/metrics` is scraped; everything rarer goes
/// through swift-metrics.
struct RequestStats: Sendable {
    /// Upper bounds of the latency buckets, in nanoseconds (0.5 ms ... 10 s).
    static let bucketBounds: [Int64] = [
        500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_000_000_000, 5_000_000_000, 10_000_000_000,
    ]

    /// 1xx ... 5xx.
    var byClass: [UInt64] = [0, 0, 0, 0, 0]
    /// Non-cumulative counts per bucket; the last slot is above the largest bound.
    var buckets = [UInt64](repeating: 0, count: RequestStats.bucketBounds.count + 1)
    var sumNanoseconds: Int64 = 0
    var count: UInt64 = 0

    mutating func record(status: Int, nanoseconds: Int64) {
        byClass[min(max(status / 100 - 1, 0), 4)] &+= 1
        var index = 0
        let bounds = Self.bucketBounds
        while index < bounds.count, nanoseconds > bounds[index] { index += 1 }
        buckets[index] &+= 1
        sumNanoseconds &+= nanoseconds
        count &+= 1
    }

    static func + (lhs: RequestStats, rhs: RequestStats) -> RequestStats {
        var sum = lhs
        for i in 0..<5 { sum.byClass[i] &+= rhs.byClass[i] }
        for i in sum.buckets.indices { sum.buckets[i] &+= rhs.buckets[i] }
        sum.sumNanoseconds &+= rhs.sumNanoseconds
        sum.count &+= rhs.count
        return sum
    }

    /// `gateway_requests_total` and `gateway_request_duration_seconds` in Prometheus text format.
    static func render(_ stats: [(pool: String, stats: RequestStats)]) -> [UInt8] {
        var text = "# TYPE gateway_requests_total counter\n"
        let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        for (pool, stats) in stats {
            for (i, name) in classes.enumerated() {
                text += "gateway_requests_total{pool=\"\(pool)\",code=\"\(name)\"} \(stats.byClass[i])\n"
            }
        }
        text += "# TYPE gateway_request_duration_seconds histogram\n"
        for (pool, stats) in stats {
            var cumulative: UInt64 = 0
            for (i, bound) in bucketBounds.enumerated() {
                cumulative += stats.buckets[i]
                text += "gateway_request_duration_seconds_bucket{pool=\"\(pool)\",le=\"\(Double(bound) / 1e9)\"} \(cumulative)\n"
            }
            text += "gateway_request_duration_seconds_bucket{pool=\"\(pool)\",le=\"+Inf\"} \(stats.count)\n"
            text += "gateway_request_duration_seconds_sum{pool=\"\(pool)\"} \(Double(stats.sumNanoseconds) / 1e9)\n"
            text += "gateway_request_duration_seconds_count{pool=\"\(pool)\"} \(stats.count)\n"
        }
        return Array(text.utf8)
    }
}
