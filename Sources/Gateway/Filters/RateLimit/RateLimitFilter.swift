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
        let localKey = text.map { LocalRateLimiter.Key(policy: policy.index, text: $0) }
            ?? LocalRateLimiter.Key(policy: policy.index, address: address?.bits ?? 0)
        guard policy.usesRedis, let redis = exchange.generation.redis else {
            return decide(limits.local.check(localKey, rule: policy.rule, now: Self.microsecondsNow(), cost: policy.cost), policy, exchange)
        }
        let key = loop.rateLimits.redisKey(policy, text: text, address: address, clientText: exchange.clientText)
        return exchange.wait(for: RedisRateLimiter.check(key, arguments: policy.redisArguments, client: redis)) { result in
            switch result {
            case .success(let outcome):
                return self.decide(outcome, policy, exchange)
            case .failure(let error):
                // Never stop limiting: this process limits alone, to its share of the limit.
                loop.rateLimits.stats[policy.index].fallbacks &+= 1
                loop.rateLimits.logFallback(policy, error: error, logger: exchange.runtime.logger)
                let outcome = self.limits.local.check(localKey, rule: policy.fallbackRule, now: Self.microsecondsNow(),
                                                      cost: policy.cost)
                return self.decide(outcome, policy, exchange)
            }
        }
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
