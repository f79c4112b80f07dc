import Cache
import Logging
import NIOCore
import Router

/// What one event loop keeps for rate limiting: per-policy counters (summed when `/metrics` is
/// scraped), when a Redis fallback was last logged, and the Redis keys of recent clients.
struct RateLimitLoopState {
    /// Per policy, by its slot (`Policy.index`).
    var stats: [RateLimitStats]
    /// When a Redis failure of the rate limiter was last logged (at most one line per 10 s).
    private var fallbackLoggedAt = NIODeadline.uptimeNanoseconds(0)
    /// Keys by policy and client address: clients come back, and building a key is a few
    /// String operations per request.
    private var redisKeys: [AddressKey: String] = [:]
    private static let maxRedisKeys = 4096
    /// Leases of shared buckets, by bucket (bounded: idle ones go first when full).
    var leases: [LocalRateLimiter.Key: RateLimitLease] = [:]
    static let maxLeases = 100_000

    private struct AddressKey: Hashable {
        var policy: Int
        var address: UInt128
    }

    init(policies: Int) {
        stats = Array(repeating: RateLimitStats(), count: policies)
    }

    /// A reload added policy slots.
    mutating func grow(to slots: Int) {
        if stats.count < slots { stats += Array(repeating: RateLimitStats(), count: slots - stats.count) }
    }

    /// The Redis key of a bucket (the header or identity text, else the grouped address).
    mutating func redisKey(_ policy: RateLimitRuntime.Policy, text: String?, address: IPAddress?, clientText: String) -> String {
        guard text == nil, let address else {
            return RateLimitRuntime.redisKey(policy, text: text, address: address, clientText: clientText)
        }
        let cacheKey = AddressKey(policy: policy.index, address: address.bits)
        if let key = redisKeys[cacheKey] { return key }
        if redisKeys.count >= Self.maxRedisKeys { redisKeys.removeAll(keepingCapacity: true) }
        let key = RateLimitRuntime.redisKey(policy, text: nil, address: address, clientText: clientText)
        redisKeys[cacheKey] = key
        return key
    }

    /// Makes room for one more lease: drops those that hold nothing and wait for nothing; if
    /// all are busy, all go (their tokens are lost, which only makes the limit stricter).
    mutating func makeRoomForLease(now: Int64) {
        guard leases.count >= Self.maxLeases else { return }
        leases = leases.filter { $0.value.taking || $0.value.blockedUntil > now || ($0.value.tokens > 0 && $0.value.expiresAt > now) }
        if leases.count >= Self.maxLeases { leases.removeAll(keepingCapacity: true) }
    }

    mutating func logFallback(_ policy: RateLimitRuntime.Policy, error: Error, logger: Logger) {
        let now = NIODeadline.now()
        guard now - fallbackLoggedAt > .seconds(10) else { return }
        fallbackLoggedAt = now
        logger.warning("rate limit: Redis unavailable, limiting in this process", metadata: [
            "policy": .string(policy.name), "error": .string("\(error)"),
        ])
    }
}
