/// What one event loop's Redis client did, owned by that loop (plain integers, no locks) and
/// summed over loops when metrics are scraped.
public struct RedisStats: Sendable {
    /// Upper bounds of the latency buckets, in nanoseconds (50 µs ... 1 s).
    public static let bucketBounds: [Int64] = [
        50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
        25_000_000, 50_000_000, 100_000_000, 250_000_000, 1_000_000_000,
    ]

    public var replies: UInt64 = 0
    /// Non-cumulative counts per latency bucket; the last slot is above the largest bound.
    public var buckets = [UInt64](repeating: 0, count: RedisStats.bucketBounds.count + 1)
    public var sumNanoseconds: Int64 = 0
    /// Failed commands by `RedisError.kind`.
    public var errors: [String: UInt64] = [:]
    public var connects: UInt64 = 0
    public var connectFailures: UInt64 = 0
    public var breakerOpenings: UInt64 = 0
    /// Redis Cluster's `MOVED` and `ASK` answers followed.
    public var redirects: UInt64 = 0
    /// Times the cluster's slot map was read.
    public var topologyRefreshes: UInt64 = 0
    /// Times a loop saw the master move (a sentinel failover; the cluster's set of masters).
    public var masterChanges: UInt64 = 0
    public var connected = false
    public var breakerOpen = false

    public init() {}

    mutating func recordReply(nanoseconds: Int64) {
        var index = 0
        let bounds = Self.bucketBounds
        while index < bounds.count, nanoseconds > bounds[index] { index += 1 }
        buckets[index] &+= 1
        sumNanoseconds &+= nanoseconds
        replies &+= 1
    }

    mutating func recordError(_ error: RedisError) {
        errors[error.kind, default: 0] &+= 1
    }

    public static func + (lhs: RedisStats, rhs: RedisStats) -> RedisStats {
        var sum = lhs
        sum.replies &+= rhs.replies
        for i in sum.buckets.indices { sum.buckets[i] &+= rhs.buckets[i] }
        sum.sumNanoseconds &+= rhs.sumNanoseconds
        for (kind, count) in rhs.errors { sum.errors[kind, default: 0] &+= count }
        sum.connects &+= rhs.connects
        sum.connectFailures &+= rhs.connectFailures
        sum.breakerOpenings &+= rhs.breakerOpenings
        sum.redirects &+= rhs.redirects
        sum.topologyRefreshes &+= rhs.topologyRefreshes
        sum.masterChanges &+= rhs.masterChanges
        sum.connected = lhs.connected || rhs.connected
        sum.breakerOpen = lhs.breakerOpen || rhs.breakerOpen
        return sum
    }
}
