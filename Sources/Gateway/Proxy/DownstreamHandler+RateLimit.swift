import Cache
import NIOCore
import Redis
import Router

/// Rate limiting on the request path: the policy's bucket in this process or in Redis (the
/// request parked meanwhile), 429 past the limit, `RateLimit` fields on every response of a
/// limited route, the in-process fallback while Redis cannot answer.
extension DownstreamHandler {
    func checkRateLimit(_ policy: RateLimitRuntime.Policy, limits: RateLimitRuntime, _ start: PendingStart,
                        _ decision: Router.Decision, _ routed: Router.Request) {
        if let client = start.client, limits.allow.contains(client) {
            loop.rateLimitStats[policy.index].exempt &+= 1
            return admitted(start, decision, routed)
        }
        let text = limits.keyText(policy, head: start.head, clientText: clientText, identity: runtime.identity)
        let address = start.client.map { RateLimitRuntime.grouped($0, prefix: policy.ipv6Prefix) }
        let localKey = text.map { LocalRateLimiter.Key(policy: policy.index, text: $0) }
            ?? LocalRateLimiter.Key(policy: policy.index, address: address?.bits ?? 0)
        guard policy.usesRedis, let redis = loop.redis else {
            let outcome = limits.local.check(localKey, rule: policy.rule, now: Self.microsecondsNow(), cost: policy.cost)
            return rateLimited(outcome, policy: policy, start, decision, routed)
        }
        // A connection's requests mostly come from one address: its key is made once.
        let key: String
        if text == nil, let cached = rateLimitKeyCache, cached.policy == policy.index, cached.address == address {
            key = cached.key
        } else {
            key = RateLimitRuntime.redisKey(policy, text: text, address: address, clientText: clientText)
            if text == nil { rateLimitKeyCache = (policy.index, address, key) }
        }
        parked = true
        RedisRateLimiter.check(key, arguments: policy.redisArguments, client: redis)
            .assumeIsolated()
            .whenComplete { result in
                self.parked = false
                guard self.state == .open else { return }
                switch result {
                case .success(let outcome):
                    self.rateLimited(outcome, policy: policy, start, decision, routed)
                case .failure(let error):
                    // Never stop limiting: this process limits alone, to its share of the limit.
                    self.loop.rateLimitStats[policy.index].fallbacks &+= 1
                    self.logFallback(policy, error: error)
                    let outcome = limits.local.check(localKey, rule: policy.fallbackRule, now: Self.microsecondsNow(), cost: policy.cost)
                    self.rateLimited(outcome, policy: policy, start, decision, routed)
                }
                self.pumpRequest()
                self.flushClient()
            }
    }

    private func rateLimited(_ outcome: GCRA.Outcome, policy: RateLimitRuntime.Policy, _ start: PendingStart,
                             _ decision: Router.Decision, _ routed: Router.Request) {
        let fields = RateLimitRuntime.fields(policy, outcome)
        guard outcome.allowed else {
            loop.rateLimitStats[policy.index].limited &+= 1
            let retryAfter = max(1, (outcome.retryAfterMicroseconds + 999_999) / 1_000_000)
            let response = LocalResponse.error(
                429, "rate limit exceeded", requestID: start.requestID, close: start.hasBody,
                extraHeaders: start.addedHeaders + fields.pairs + [("Retry-After", String(retryAfter))])
            respondLocally(response, head: start.head, requestID: start.requestID, errorKind: "rate_limited", linger: start.hasBody)
            return
        }
        loop.rateLimitStats[policy.index].allowed &+= 1
        var start = start
        start.rateLimit = fields
        admitted(start, decision, routed)
    }

    private func logFallback(_ policy: RateLimitRuntime.Policy, error: Error) {
        let now = NIODeadline.now()
        guard now - loop.rateLimitFallbackLoggedAt > .seconds(10) else { return }
        loop.rateLimitFallbackLoggedAt = now
        runtime.logger.warning("rate limit: Redis unavailable, limiting in this process", metadata: [
            "policy": .string(policy.name), "error": .string("\(error)"),
        ])
    }

    static func microsecondsNow() -> Int64 {
        ConsistencyRuntime.unixMilliseconds() * 1000
    }
}
