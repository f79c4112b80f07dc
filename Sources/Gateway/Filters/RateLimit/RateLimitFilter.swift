import Cache
import HTTPWire
import NIOCore
import Redis
import Router

/// A rate limit policy on the routes that have it: the request's bucket is checked in this
/// process or in Redis (the exchange suspended meanwhile); past the limit the answer is 429
/// with `Retry-After`; every response of the route carries `RateLimit-Policy` and `RateLimit`.
/// While Redis cannot answer, this process limits alone, to its share of the limit.
/// A `by_claim` policy picks its variant by the verified token's claim (free and pro users of
/// one route get their plan's limit).
final class RateLimitFilter: ExchangeFilter, Sendable {
    let policy: RateLimitRuntime.Policy
    let limits: RateLimitRuntime
    /// `by_claim`: the claim, and the policy for each of its values.
    let byClaim: (claim: String, policies: [String: RateLimitRuntime.Policy])?

    init(policy: RateLimitRuntime.Policy, limits: RateLimitRuntime, byClaim: (claim: String, policies: [String: RateLimitRuntime.Policy])? = nil) {
        self.policy = policy
        self.limits = limits
        self.byClaim = byClaim
    }

    /// The policy this request is limited by.
    private func policy(for exchange: Exchange) -> RateLimitRuntime.Policy {
        guard let byClaim, let value = exchange.filters.auth?.claim(byClaim.claim), let variant = byClaim.policies[value] else {
            return policy
        }
        return variant
    }

    func request(_ exchange: Exchange) -> FilterVerdict {
        let policy = policy(for: exchange)
        let loop = exchange.loop
        if let client = exchange.client, limits.allow.contains(client) {
            loop.rateLimits.stats[policy.index].exempt &+= 1
            return .next
        }
        let text = limits.keyText(policy, head: exchange.head, identity: { exchange.identity })
        let address = exchange.client.map { RateLimitRuntime.grouped($0, prefix: policy.ipv6Prefix) }
        let localKey = RateLimitRuntime.localKey(policy, text: text, address: address)
        guard policy.usesRedis, let redis = exchange.generation.redis else {
            return decide(limits.local.check(localKey, rule: policy.rule, now: Self.microsecondsNow(), cost: policy.cost), policy, exchange)
        }
        let key = loop.rateLimits.redisKey(policy, text: text, address: address, clientText: exchange.clientText)
        guard policy.leaseMax > 0 else {
            loop.rateLimits.stats[policy.index].redisCalls &+= 1
            return exchange.wait(for: RedisRateLimiter.check(key, arguments: policy.redisArguments, client: redis)) { result in
                switch result {
                case .success(let outcome): self.decide(outcome, policy, exchange)
                case .failure(let error): self.fallBack(localKey, policy, exchange, error: error)
                }
            }
        }
        return leased(key, localKey: localKey, policy: policy, redis: redis, exchange: exchange)
    }

    /// A shared bucket spent from this loop's lease: no Redis call while the lease holds tokens
    /// (a renewal goes out in the background when it runs low), one when it is empty, none
    /// while Redis said the bucket is empty.
    private func leased(_ key: String, localKey: LocalRateLimiter.Key, policy: RateLimitRuntime.Policy, redis: RedisLoopClient,
                        exchange: Exchange) -> FilterVerdict {
        let loop = exchange.loop
        let now = Self.microsecondsNow()
        let lifetime = policy.leaseLifetimeMicroseconds
        if loop.rateLimits.leases[localKey] == nil { loop.rateLimits.makeRoomForLease(now: now) }
        let decision = loop.rateLimits.leases[localKey, default: RateLimitLease(cost: policy.cost)]
            .spend(cost: policy.cost, now: now, maxSize: policy.leaseMax, lifetime: lifetime)
        switch decision {
        case .allow(let renew):
            loop.rateLimits.stats[policy.index].leased &+= 1
            if let renew {
                loop.rateLimits.stats[policy.index].redisCalls &+= 1
                RedisRateLimiter.take(key, count: renew, arguments: policy.redisArguments, client: redis).assumeIsolated().whenComplete { result in
                    let now = Self.microsecondsNow()
                    switch result {
                    case .success(let grant):
                        _ = loop.rateLimits.leases[localKey]?.granted(
                            grant.granted, remaining: grant.remaining, retryAfter: grant.retryAfterMicroseconds, reset: grant.resetMicroseconds,
                            renewal: true, spendNow: 0, now: now, lifetime: lifetime)
                    case .failure:
                        loop.rateLimits.leases[localKey]?.takeFailed(renewal: true)
                    }
                }
            }
            return decide(Self.outcome(allowed: true, loop.rateLimits.leases[localKey], now: now), policy, exchange)
        case .deny:
            loop.rateLimits.stats[policy.index].leased &+= 1
            return decide(Self.outcome(allowed: false, loop.rateLimits.leases[localKey], now: now), policy, exchange)
        case .take(let count, let renewal):
            loop.rateLimits.stats[policy.index].redisCalls &+= 1
            return exchange.wait(for: RedisRateLimiter.take(key, count: count, arguments: policy.redisArguments, client: redis)) { result in
                let now = Self.microsecondsNow()
                switch result {
                case .success(let grant):
                    let allowed = loop.rateLimits.leases[localKey]?.granted(
                        grant.granted, remaining: grant.remaining, retryAfter: grant.retryAfterMicroseconds, reset: grant.resetMicroseconds,
                        renewal: renewal, spendNow: policy.cost, now: now, lifetime: lifetime) ?? (grant.granted > 0)
                    return self.decide(Self.outcome(allowed: allowed, loop.rateLimits.leases[localKey], now: now), policy, exchange)
                case .failure(let error):
                    loop.rateLimits.leases[localKey]?.takeFailed(renewal: renewal)
                    return self.fallBack(localKey, policy, exchange, error: error)
                }
            }
        }
    }

    /// What the lease says for the RateLimit fields and a 429's Retry-After.
    private static func outcome(allowed: Bool, _ lease: RateLimitLease?, now: Int64) -> GCRA.Outcome {
        let reset = max(0, (lease?.resetAt ?? now) - now)
        return GCRA.Outcome(allowed: allowed, remaining: allowed ? lease?.remaining ?? 0 : 0,
                            retryAfterMicroseconds: allowed ? 0 : max(1, (lease?.blockedUntil ?? now) - now), resetMicroseconds: reset, tat: 0)
    }

    /// Redis could not answer. Never stop limiting: this process limits alone, to its share of
    /// the limit.
    private func fallBack(_ localKey: LocalRateLimiter.Key, _ policy: RateLimitRuntime.Policy, _ exchange: Exchange, error: Error) -> FilterVerdict {
        exchange.loop.rateLimits.stats[policy.index].fallbacks &+= 1
        exchange.loop.rateLimits.logFallback(policy, error: error, logger: exchange.runtime.logger)
        let outcome = limits.local.check(localKey, rule: policy.fallbackRule, now: Self.microsecondsNow(), cost: policy.cost)
        return decide(outcome, policy, exchange)
    }

    private func decide(_ outcome: GCRA.Outcome, _ policy: RateLimitRuntime.Policy, _ exchange: Exchange) -> FilterVerdict {
        exchange.filters.rateLimit = RateLimitRuntime.fields(policy, outcome)
        guard outcome.allowed else {
            exchange.loop.rateLimits.stats[policy.index].limited &+= 1
            let retryAfter = max(1, (outcome.retryAfterMicroseconds + 999_999) / 1_000_000)
            return .respond(LocalResponse.error(429, "rate limit exceeded", requestID: exchange.requestID, errorKind: "rate_limited",
                                                extraHeaders: [("Retry-After", String(retryAfter))]))
        }
        exchange.loop.rateLimits.stats[policy.index].allowed &+= 1
        return .next
    }

    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int {
        exchange.filters.rateLimit?.length ?? 0
    }

    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {
        exchange.filters.rateLimit?.write(into: &writer)
    }

    static func microsecondsNow() -> Int64 {
        ConsistencyRuntime.unixMilliseconds() * 1000
    }
}
