import Cache
import HTTPWire
import NIOCore
import Redis
import Router

/// A rate limit policy on the routes that have it: the request's bucket is checked in this
/// process or in Redis (the exchange suspended meanwhile); past the limit the answer is 429
/// with `Retry-After`; every response of the route carries `RateLimit-Policy` and `RateLimit`.
/// While Redis cannot answer, this process limits alone, to its share of the limit.
final class RateLimitFilter: ExchangeFilter, Sendable {
    let policy: RateLimitRuntime.Policy
    let limits: RateLimitRuntime

    init(policy: RateLimitRuntime.Policy, limits: RateLimitRuntime) {
        self.policy = policy
        self.limits = limits
    }

    func request(_ exchange: Exchange) -> FilterVerdict {
        let loop = exchange.loop
        if let client = exchange.client, limits.allow.contains(client) {
            loop.rateLimits.stats[policy.index].exempt &+= 1
            return .next
        }
        let text = limits.keyText(policy, head: exchange.head, clientText: exchange.clientText, identity: exchange.runtime.identity)
        let address = exchange.client.map { RateLimitRuntime.grouped($0, prefix: policy.ipv6Prefix) }
        let localKey = text.map { LocalRateLimiter.Key(policy: policy.index, text: $0) }
            ?? LocalRateLimiter.Key(policy: policy.index, address: address?.bits ?? 0)
        guard policy.usesRedis, let redis = exchange.generation.redis else {
            return decide(limits.local.check(localKey, rule: policy.rule, now: Self.microsecondsNow(), cost: policy.cost), exchange)
        }
        let key = loop.rateLimits.redisKey(policy, text: text, address: address, clientText: exchange.clientText)
        return exchange.wait(for: RedisRateLimiter.check(key, arguments: policy.redisArguments, client: redis)) { result in
            switch result {
            case .success(let outcome):
                return self.decide(outcome, exchange)
            case .failure(let error):
                // Never stop limiting: this process limits alone, to its share of the limit.
                loop.rateLimits.stats[self.policy.index].fallbacks &+= 1
                loop.rateLimits.logFallback(self.policy, error: error, logger: exchange.runtime.logger)
                let outcome = self.limits.local.check(localKey, rule: self.policy.fallbackRule, now: Self.microsecondsNow(),
                                                      cost: self.policy.cost)
                return self.decide(outcome, exchange)
            }
        }
    }

    private func decide(_ outcome: GCRA.Outcome, _ exchange: Exchange) -> FilterVerdict {
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
