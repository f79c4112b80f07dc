/// The generic cell rate algorithm (redis-cell's, and Stripe-style limiters'): per key one
/// number, the theoretical arrival time (TAT) of the next request if requests came at exactly
/// the allowed rate. A request may go when taking it would not put the TAT further ahead of
/// now than the bucket holds. No counters to reset, no windows to straddle: a client that
/// used its burst gets back one request every `period / limit`.
///
/// Pure arithmetic on microseconds, so the same rules run in this process and, as a Lua
/// script, in Redis on the server's clock.
public struct GCRA: Sendable, Equatable {
    /// `limit` requests per `period`, plus `burst` more at once.
    public let limit: Int
    public let periodMicroseconds: Int64
    public let burst: Int

    public init(limit: Int, periodMicroseconds: Int64, burst: Int) {
        precondition(limit > 0 && periodMicroseconds > 0 && burst >= 0)
        self.limit = limit
        self.periodMicroseconds = periodMicroseconds
        self.burst = burst
    }

    /// The time one request's worth of the bucket takes to come back.
    public var emissionInterval: Int64 { max(1, periodMicroseconds / Int64(limit)) }
    /// How many requests a full bucket holds: all of them may go at once.
    public var capacity: Int { limit + burst }

    public struct Outcome: Sendable, Equatable {
        public var allowed: Bool
        /// Requests that could still go now.
        public var remaining: Int
        /// Limited: when this request could go.
        public var retryAfterMicroseconds: Int64
        /// When the bucket is full again (RateLimit's `t`).
        public var resetMicroseconds: Int64
        /// The TAT to keep (unchanged when limited).
        public var tat: Int64

        public init(allowed: Bool, remaining: Int, retryAfterMicroseconds: Int64, resetMicroseconds: Int64, tat: Int64) {
            self.allowed = allowed
            self.remaining = remaining
            self.retryAfterMicroseconds = retryAfterMicroseconds
            self.resetMicroseconds = resetMicroseconds
            self.tat = tat
        }
    }

    /// - Parameter tat: the key's stored TAT (nil: never seen, or expired).
    public func check(tat stored: Int64?, now: Int64, cost: Int = 1) -> Outcome {
        let interval = emissionInterval
        let tat = max(stored ?? now, now)
        let newTAT = tat + Int64(cost) * interval
        let window = Int64(capacity) * interval
        let allowAt = newTAT - window
        if now < allowAt {
            return Outcome(allowed: false, remaining: Self.remaining(window: window, ahead: tat - now, interval: interval),
                           retryAfterMicroseconds: allowAt - now, resetMicroseconds: tat - now, tat: tat)
        }
        return Outcome(allowed: true, remaining: Self.remaining(window: window, ahead: newTAT - now, interval: interval),
                       retryAfterMicroseconds: 0, resetMicroseconds: newTAT - now, tat: newTAT)
    }

    private static func remaining(window: Int64, ahead: Int64, interval: Int64) -> Int {
        Int(max(0, (window - ahead) / interval))
    }
}
