import Cache
import Router

/// Rate limits as the data path uses them: each policy's GCRA rules (and the smaller one used
/// while Redis is unreachable), which policy each route has, the allowlist, the in-process table.
final class RateLimitRuntime: Sendable {
    struct Policy: Sendable {
        let name: String
        let rule: GCRA
        /// The in-process rule while Redis is down (`fallback_share` of the limit).
        let fallbackRule: GCRA
        let key: RateLimitPolicyConfig.Key
        let ipv6Prefix: Int
        let cost: Int
        let usesRedis: Bool
        /// `RateLimit-Policy` (IETF httpapi draft, structured fields).
        let policyHeader: String
        let keyPrefix: String
    }

    let policies: [Policy]
    /// Per route index: its policy (nil: not limited).
    let routePolicies: [Int?]
    /// Requests matching no route.
    let defaultPolicy: Int?
    let allow: CIDRSet
    let local: LocalRateLimiter

    init?(config: GatewayConfig) {
        let limits = config.rateLimits
        guard !limits.policies.isEmpty else { return nil }
        policies = limits.policies.map { name, policy in
            let period = policy.period.nanoseconds / 1000
            let share = limits.fallbackShare
            return Policy(
                name: name, rule: GCRA(limit: policy.limit, periodMicroseconds: period, burst: policy.burst),
                fallbackRule: GCRA(limit: max(1, Int((Double(policy.limit) * share).rounded(.down))), periodMicroseconds: period,
                                   burst: Int((Double(policy.burst) * share).rounded(.down))),
                key: policy.key, ipv6Prefix: policy.ipv6Prefix, cost: policy.cost,
                usesRedis: (policy.store ?? (config.redis == nil ? .local : .redis)) == .redis,
                policyHeader: "\"\(name)\";q=\(policy.limit);w=\(max(1, period / 1_000_000))",
                keyPrefix: "gw:rl:\(name):")
        }
        let index = { (name: String) in limits.policies.firstIndex { $0.name == name } }
        defaultPolicy = limits.defaultPolicy.flatMap(index)
        routePolicies = config.routes.map { route in
            switch route.rateLimit {
            case nil: limits.defaultPolicy.flatMap(index)
            case "none": nil
            case let name?: index(name)
            }
        }
        allow = CIDRSet(limits.allow)
        local = LocalRateLimiter(maxEntries: limits.maxKeys)
    }

    func policy(forRoute route: Int?) -> Int? {
        guard let route else { return defaultPolicy }
        return routePolicies[route]
    }

    /// The bucket a request draws from: the policy's key over the client address (the one
    /// routing and logs use; IPv6 grouped by prefix), a header, or the identity chain.
    func key(_ policy: Policy, head: HTTPHead, client: IPAddress?, clientText: String, identity: ClientIdentity) -> String {
        switch policy.key {
        case .ip:
            break
        case .header(let name):
            if let value = head.firstValue(named: name), !value.isEmpty {
                return policy.keyPrefix + "h:" + Digest.hex(Digest.sha256(Array(value.utf8)).prefix(12))
            }
        case .identity:
            if let identity = identity.identity(of: head, client: clientText) { return policy.keyPrefix + "i:" + identity }
        }
        guard let client else { return policy.keyPrefix + clientText }
        if client.isIPv4 { return policy.keyPrefix + client.description }
        let mask: UInt128 = policy.ipv6Prefix == 128 ? ~0 : ~(~UInt128(0) >> policy.ipv6Prefix)
        return policy.keyPrefix + IPAddress(bits: client.bits & mask).description + "/\(policy.ipv6Prefix)"
    }

    /// `RateLimit` and `RateLimit-Policy` for a response of a limited route.
    static func headers(_ policy: Policy, _ outcome: GCRA.Outcome) -> [(String, String)] {
        let reset = (outcome.resetMicroseconds + 999_999) / 1_000_000
        return [("RateLimit-Policy", policy.policyHeader), ("RateLimit", "\"\(policy.name)\";r=\(outcome.remaining);t=\(reset)")]
    }
}
