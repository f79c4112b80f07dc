import Cache
import HTTPWire
import Redis
import Router

/// Rate limits as the data path uses them: each policy's GCRA rules (and the smaller one used
/// while Redis is unreachable), which policy each route has, the allowlist, the in-process table.
final class RateLimitRuntime: Sendable {
    /// A class: the data path hands a policy around per request, and one reference is cheaper
    /// to pass than a struct of strings and arrays.
    final class Policy: Sendable {
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
        /// The policy's slot: its buckets' key and its counters' index, stable across reloads
        /// while the policy is unchanged.
        let index: Int
        /// The Redis script's arguments (the same for every check).
        let redisArguments: [RedisArgument]
        /// Both fields up to the remaining count (see `RateLimitFields`).
        let fieldsPrefix: String
        /// The most tokens one loop leases from Redis at once (0: a Redis call per request).
        let leaseMax: Int
        let leaseLifetimeMicroseconds: Int64

        init(name: String, rule: GCRA, fallbackRule: GCRA, key: RateLimitPolicyConfig.Key, ipv6Prefix: Int, cost: Int,
             usesRedis: Bool, index: Int, leaseShare: Double = 0, leaseLifetimeMicroseconds: Int64 = 1_000_000) {
            self.name = name
            self.rule = rule
            self.fallbackRule = fallbackRule
            self.key = key
            self.ipv6Prefix = ipv6Prefix
            self.cost = cost
            self.usesRedis = usesRedis
            policyHeader = "\"\(name)\";q=\(rule.limit);w=\(max(1, rule.periodMicroseconds / 1_000_000))"
            keyPrefix = "gw:rl:\(name):"
            self.index = index
            redisArguments = RedisRateLimiter.arguments(rule: rule, cost: cost)
            fieldsPrefix = "RateLimit-Policy: \(policyHeader)\r\nRateLimit: \"\(name)\";r="
            leaseMax = leaseShare > 0 ? max(cost, Int((Double(rule.capacity) * leaseShare).rounded(.down))) : 0
            self.leaseLifetimeMicroseconds = leaseLifetimeMicroseconds
        }
    }

    /// The configured policies, in file order, then the per-claim-value variants of `by_claim` ones.
    let policies: [Policy]
    /// By position of a `by_claim` policy: its claim, and per claim value the variant.
    let claimVariants: [Int: (claim: String, policies: [String: Policy])]
    /// Per route index: its policy (nil: not limited).
    let routePolicies: [Int?]
    /// Requests matching no route.
    let defaultPolicy: Int?
    let allow: CIDRSet
    let local: LocalRateLimiter
    /// Every policy ever configured, by slot: a reload keeps an unchanged policy's slot (and so
    /// its buckets and counters); a new or changed one gets a fresh slot.
    let slots: [Slot]
    var slotCount: Int { slots.count }

    struct Slot: Sendable {
        var name: String
        var policy: RateLimitPolicyConfig
        var fallbackShare: Double
    }

    /// - Parameter previous: the runtime a reload replaces: its in-process buckets and slots
    ///   carry over.
    init?(config: GatewayConfig, previous: RateLimitRuntime? = nil) {
        let limits = config.rateLimits
        guard !limits.policies.isEmpty else { return nil }
        var slots = previous?.slots ?? []
        // Configured policies first (routes refer to them by position), then each `by_claim`
        // policy's per-value variants, named `POLICY.VALUE` (in RateLimit-Policy and metrics).
        var entries = limits.policies
        var variants: [Int: (claim: String, byValue: [String: Int])] = [:]
        for (position, entry) in limits.policies.enumerated() {
            guard let claim = entry.policy.byClaim else { continue }
            var byValue: [String: Int] = [:]
            for value in entry.policy.claimLimits.keys.sorted() {
                byValue[value] = entries.count
                entries.append((entry.name + "." + value, entry.policy.forClaimValue(value)))
            }
            variants[position] = (claim, byValue)
        }
        let slotOf = entries.map { name, policy in
            if let slot = slots.firstIndex(where: { $0.name == name && $0.policy == policy && $0.fallbackShare == limits.fallbackShare }) {
                return slot
            }
            slots.append(Slot(name: name, policy: policy, fallbackShare: limits.fallbackShare))
            return slots.count - 1
        }
        self.slots = slots
        policies = entries.enumerated().map { position, entry in
            let (name, policy) = entry
            let index = slotOf[position]
            let period = policy.period.nanoseconds / 1000
            let share = limits.fallbackShare
            return Policy(
                name: name, rule: GCRA(limit: policy.limit, periodMicroseconds: period, burst: policy.burst),
                fallbackRule: GCRA(limit: max(1, Int((Double(policy.limit) * share).rounded(.down))), periodMicroseconds: period,
                                   burst: Int((Double(policy.burst) * share).rounded(.down))),
                key: policy.key, ipv6Prefix: policy.ipv6Prefix, cost: policy.cost,
                usesRedis: (policy.store ?? (config.redis == nil ? .local : .redis)) == .redis, index: index,
                leaseShare: limits.leaseShare, leaseLifetimeMicroseconds: limits.leaseLifetime.nanoseconds / 1000)
        }
        let built = policies
        claimVariants = variants.mapValues { variant in (variant.claim, variant.byValue.mapValues { built[$0] }) }
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
        local = previous.map { $0.local.maxEntries == limits.maxKeys } == true ? previous!.local : LocalRateLimiter(maxEntries: limits.maxKeys)
    }

    func policy(forRoute route: Int?) -> Int? {
        guard let route else { return defaultPolicy }
        return routePolicies[route]
    }

    /// The bucket a request draws from: the policy's key over the client address (the one
    /// routing and logs use; IPv6 grouped by prefix), a header, or the identity chain. nil text:
    /// the (grouped) address is the key.
    func keyText(_ policy: Policy, head: HTTPHead, identity: () -> String?) -> String? {
        switch policy.key {
        case .ip:
            return nil
        case .header(let name):
            guard let value = head.firstValue(named: name), !value.isEmpty else { return nil }
            return "h:" + Digest.hex(Digest.sha256(Array(value.utf8)).prefix(12))
        case .identity:
            return identity().map { "i:" + $0 }
        }
    }

    /// The address a bucket is keyed by: IPv6 grouped by the policy's prefix.
    static func grouped(_ client: IPAddress, prefix: Int) -> IPAddress {
        guard !client.isIPv4 else { return client }
        let mask: UInt128 = prefix >= 128 ? ~0 : ~(~UInt128(0) >> prefix)
        return IPAddress(bits: client.bits & mask)
    }

    /// The in-process key of a bucket: its key text, else the (grouped) client address.
    static func localKey(_ policy: Policy, text: String?, address: IPAddress?) -> LocalRateLimiter.Key {
        text.map { LocalRateLimiter.Key(policy: policy.index, text: $0) } ?? LocalRateLimiter.Key(policy: policy.index, address: address?.bits ?? 0)
    }

    /// The Redis key of a bucket.
    static func redisKey(_ policy: Policy, text: String?, address: IPAddress?, clientText: String) -> String {
        if let text { return policy.keyPrefix + text }
        guard let address else { return policy.keyPrefix + clientText }
        return policy.keyPrefix + (address.isIPv4 ? address.description : address.description + "/\(policy.ipv6Prefix)")
    }

    /// `RateLimit` and `RateLimit-Policy` for a response of a limited route.
    static func fields(_ policy: Policy, _ outcome: GCRA.Outcome) -> RateLimitFields {
        RateLimitFields(policy: policy, remaining: outcome.remaining,
                        resetSeconds: (outcome.resetMicroseconds + 999_999) / 1_000_000)
    }
}
