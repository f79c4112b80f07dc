/// One event loop's lease of a shared bucket: tokens taken from Redis in a batch and spent
/// here without a round trip, as Envoy's and Stripe's limiters do. Pure: the caller passes the
/// time and runs the Redis calls it asks for.
///
/// Why the limit holds: every token is taken from the one bucket in Redis under GCRA, so the
/// tokens taken in any window never exceed the limit; a token is spent at most `lifetime` after
/// it was taken, and at most `maxSize` are held per loop. Over any window, the requests that
/// pass therefore differ from an exact limiter's by at most the tokens held when it began:
/// `instances × event loops × maxSize` (the documented bound). A cold key never holds more than
/// its request's cost (its lease only grows while tokens are needed again within `lifetime`),
/// so it is exact.
public struct RateLimitLease: Sendable {
    /// Tokens held, spendable until `expiresAt`.
    public private(set) var tokens = 0
    public private(set) var expiresAt: Int64 = 0
    /// What the next take asks for: the cost, doubling while the key stays busy, up to the max.
    public private(set) var size: Int
    /// Redis refused a take: no token exists before then, so requests are refused here.
    public private(set) var blockedUntil: Int64 = 0
    /// A take is in flight (a renewal ahead of need, or one a request waits for).
    public private(set) var taking = false
    private var lastTakeAt: Int64 = .min / 2
    /// Redis's view at the last take, for the RateLimit field: requests left beside the tokens
    /// held, and when the bucket is full again.
    public private(set) var remainingInRedis = 0
    public private(set) var resetAt: Int64 = 0

    public init(cost: Int) { size = cost }

    public enum Decision: Equatable, Sendable {
        /// Spent from the lease; `renew` asks for a take of that many tokens in the background.
        case allow(renew: Int?)
        /// Redis said no token exists before `blockedUntil`.
        case deny
        /// Take `count` tokens from Redis and decide on its answer (`granted(...)`).
        /// `renewal`: the lease is being refilled (so the next request needing tokens while it
        /// is in flight asks for its own cost: `renewal: false`, the answer spent at once).
        case take(count: Int, renewal: Bool)
    }

    public mutating func spend(cost: Int, now: Int64, maxSize: Int, lifetime: Int64) -> Decision {
        if expiresAt <= now { tokens = 0 }
        if tokens >= cost {
            tokens -= cost
            if !taking, size > cost, tokens < size / 2 {
                taking = true
                grow(cost: cost, now: now, maxSize: maxSize, lifetime: lifetime)
                return .allow(renew: size)
            }
            return .allow(renew: nil)
        }
        if blockedUntil > now { return .deny }
        if taking { return .take(count: cost, renewal: false) }
        taking = true
        grow(cost: cost, now: now, maxSize: maxSize, lifetime: lifetime)
        return .take(count: size, renewal: true)
    }

    /// Busy (tokens needed again within `lifetime` of the last take): ask for twice as many;
    /// idle: only what one request costs.
    private mutating func grow(cost: Int, now: Int64, maxSize: Int, lifetime: Int64) {
        size = now - lastTakeAt < lifetime ? max(cost, min(maxSize, size * 2)) : cost
        lastTakeAt = now
    }

    /// Redis answered a take.
    /// - Parameters:
    ///   - granted: tokens taken (0: none left; then `retryAfter` says when one is).
    ///   - spendNow: the request that asked spends `spendNow` of them at once (its cost, when
    ///     it waited; 0 for a background renewal). Returns whether it could.
    public mutating func granted(_ granted: Int, remaining: Int, retryAfter: Int64, reset: Int64, renewal: Bool, spendNow: Int,
                                 now: Int64, lifetime: Int64) -> Bool {
        if renewal { taking = false }
        if expiresAt <= now { tokens = 0 }
        remainingInRedis = remaining
        resetAt = now + reset
        if granted == 0 {
            blockedUntil = now + retryAfter
            if spendNow > 0, tokens >= spendNow {
                tokens -= spendNow
                return true
            }
            return false
        }
        tokens += granted - spendNow
        expiresAt = now + lifetime
        return true
    }

    /// A take failed (Redis unreachable): nothing changes but that none is in flight.
    public mutating func takeFailed(renewal: Bool) {
        if renewal { taking = false }
    }

    /// Requests left, as the RateLimit field says: Redis's count plus the tokens held here.
    public var remaining: Int { remainingInRedis + tokens }
}
