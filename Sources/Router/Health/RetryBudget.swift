/// Bounds retries to a share of traffic (Envoy's retry budget, Finagle's RetryBudget): when an
/// upstream fails broadly, retrying every request would double the load on what is left. Over a
/// sliding window, retries are allowed while they stay under `percent` of requests, plus a
/// small floor so a quiet gateway can still retry.
public struct RetryBudget: Sendable {
    public let percent: Double
    public let minimumPerSecond: Int
    private let windowNanoseconds: Int64
    /// Two half-window buckets of (requests, retries).
    private var buckets: [(start: Int64, requests: Int, retries: Int)]

    public init(percent: Double, minimumPerSecond: Int, windowSeconds: Int = 10) {
        self.percent = percent
        self.minimumPerSecond = minimumPerSecond
        windowNanoseconds = Int64(windowSeconds) * 1_000_000_000
        buckets = [(0, 0, 0), (0, 0, 0)]
    }

    private mutating func rotate(_ now: Int64) {
        let half = windowNanoseconds / 2
        let current = now / half * half
        if buckets[1].start != current {
            buckets[0] = buckets[1].start == current - half ? buckets[1] : (current - half, 0, 0)
            buckets[1] = (current, 0, 0)
        }
    }

    public mutating func recordRequest(now: Int64) {
        rotate(now)
        buckets[1].requests += 1
    }

    /// Spends a retry if the budget has room.
    public mutating func tryRetry(now: Int64) -> Bool {
        rotate(now)
        let requests = buckets[0].requests + buckets[1].requests
        let retries = buckets[0].retries + buckets[1].retries
        let allowed = max(Double(minimumPerSecond) * Double(windowNanoseconds) / 1e9, Double(requests) * percent / 100)
        guard Double(retries) < allowed else { return false }
        buckets[1].retries += 1
        return true
    }
}
