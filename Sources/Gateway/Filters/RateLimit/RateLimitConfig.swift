import Router

/// `rate_limits:` — named GCRA policies, which routes use them, and who is never limited.
public struct RateLimitConfig: Decodable, Sendable {
    /// Applies to routes without their own `rate_limit` (nil: those are not limited).
    public var defaultPolicy: String?
    /// Clients in these blocks are never limited.
    public var allow: [CIDRBlock] = []
    /// With Redis unreachable, each instance limits on its own to this share of a limit (with N
    /// instances behind a balancer, 1/N keeps the total near the limit).
    public var fallbackShare = 1.0
    /// Bound on the in-process table (keys).
    public var maxKeys = 1_000_000
    /// Redis policies: the share of a bucket one event loop may take at once and spend without
    /// a round trip (0: one Redis call per request, exact). With I instances of L loops, the
    /// requests passing in any window differ from an exact limiter's by at most
    /// I × L × max(cost, share × (limit + burst)).
    public var leaseShare = 0.01
    /// How long leased tokens may be spent after they were taken (unspent ones are dropped).
    public var leaseLifetime = ConfigDuration.seconds(1)
    public var policies: [(name: String, policy: RateLimitPolicyConfig)] = []

    enum CodingKeys: String, CodingKey, CaseIterable {
        case allow, policies
        case defaultPolicy = "default"
        case fallbackShare = "fallback_share"
        case maxKeys = "max_keys"
        case leaseShare = "lease_share"
        case leaseLifetime = "lease_lifetime"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultPolicy = try c.decodeIfPresent(String.self, forKey: .defaultPolicy)
        allow = try c.decodeCIDRs(.allow)
        fallbackShare = try c.decode(.fallbackShare, default: 1.0)
        guard fallbackShare > 0, fallbackShare <= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .fallbackShare, in: c, debugDescription: "a share in (0, 1], e.g. 0.5")
        }
        maxKeys = try c.decode(.maxKeys, default: 1_000_000)
        guard maxKeys >= 1000 else {
            throw DecodingError.dataCorruptedError(forKey: .maxKeys, in: c, debugDescription: "at least 1000")
        }
        leaseShare = try c.decode(.leaseShare, default: 0.01)
        guard leaseShare >= 0, leaseShare <= 0.5 else {
            throw DecodingError.dataCorruptedError(forKey: .leaseShare, in: c, debugDescription: "a share in [0, 0.5] (0: a Redis call per request)")
        }
        leaseLifetime = try c.decode(.leaseLifetime, default: .seconds(1))
        guard leaseLifetime.nanoseconds >= 10_000_000, leaseLifetime.nanoseconds <= 60_000_000_000 else {
            throw DecodingError.dataCorruptedError(forKey: .leaseLifetime, in: c, debugDescription: "between 10ms and 60s")
        }
        if c.contains(.policies) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .policies)
            for key in map.allKeys {
                guard key.stringValue.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), key.stringValue != "none" else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: map, debugDescription: "a policy name is letters, digits, '-' and '_' (and not 'none')")
                }
                policies.append((key.stringValue, try map.decode(RateLimitPolicyConfig.self, forKey: key)))
            }
        }
    }
}

/// One policy: `limit` requests per `period` (plus `burst` at once), per key.
public struct RateLimitPolicyConfig: Decodable, Sendable, Equatable {
    public enum Key: Sendable, Equatable, CustomStringConvertible {
        /// The client address (the same one routing and logs use), IPv6 grouped by prefix.
        case ip
        /// A request header's value (hashed); requests without it are keyed by address.
        case header(String)
        /// The `identity:` chain.
        case identity

        public var description: String {
            switch self {
            case .ip: "ip"
            case .header(let name): "header:\(name)"
            case .identity: "identity"
            }
        }
    }

    public enum Store: String, Decodable, Sendable {
        case local, redis
    }

    public var limit: Int
    public var period: ConfigDuration
    public var burst = 0
    public var key = Key.ip
    public var ipv6Prefix = 64
    public var cost = 1
    /// nil: Redis when `redis:` is configured, else local.
    public var store: Store?
    /// Plan-aware limits: the verified token's claim (`plan`) picks the limit from
    /// `claimLimits` (`limits: { pro: 600 }`); `limit` is for every other value and for
    /// requests without a verified token.
    public var byClaim: String?
    public var claimLimits: [String: Int] = [:]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case limit, period, burst, key, cost, store, limits
        case byClaim = "by_claim"
        case ipv6Prefix = "ipv6_prefix"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        limit = try c.decode(Int.self, forKey: .limit)
        guard limit >= 1 else { throw DecodingError.dataCorruptedError(forKey: .limit, in: c, debugDescription: "at least 1") }
        period = try c.decode(ConfigDuration.self, forKey: .period)
        guard period.nanoseconds >= 1_000_000 else {
            throw DecodingError.dataCorruptedError(forKey: .period, in: c, debugDescription: "at least 1ms")
        }
        burst = try c.decode(.burst, default: 0)
        guard burst >= 0 else { throw DecodingError.dataCorruptedError(forKey: .burst, in: c, debugDescription: "0 or more") }
        let keyText = try c.decode(.key, default: "ip")
        switch keyText {
        case "ip": key = .ip
        case "identity": key = .identity
        default:
            guard keyText.hasPrefix("header:"), keyText.count > 7 else {
                throw DecodingError.dataCorruptedError(forKey: .key, in: c, debugDescription: "ip, identity or header:NAME; got '\(keyText)'")
            }
            key = .header(String(keyText.dropFirst(7)).lowercased())
        }
        ipv6Prefix = try c.decode(.ipv6Prefix, default: 64)
        guard (1...128).contains(ipv6Prefix) else {
            throw DecodingError.dataCorruptedError(forKey: .ipv6Prefix, in: c, debugDescription: "a prefix length 1...128")
        }
        cost = try c.decode(.cost, default: 1)
        guard cost >= 1, cost <= limit + burst else {
            throw DecodingError.dataCorruptedError(forKey: .cost, in: c, debugDescription: "between 1 and limit + burst")
        }
        store = try c.decodeIfPresent(Store.self, forKey: .store)
        byClaim = try c.decodeIfPresent(String.self, forKey: .byClaim)
        claimLimits = try c.decode(.limits, default: [:])
        if byClaim != nil, claimLimits.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .byClaim, in: c, debugDescription: "by_claim picks a limit from limits: (e.g. { pro: 600, team: 3000 })")
        }
        if byClaim == nil, !claimLimits.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .limits, in: c, debugDescription: "limits: per claim value needs by_claim: (e.g. plan)")
        }
        for (value, limit) in claimLimits where limit < 1 || cost > limit + burst {
            throw DecodingError.dataCorruptedError(forKey: .limits, in: c, debugDescription: "the limit for '\(value)' must be at least 1 and at least cost - burst")
        }
    }

    /// The policy a claim value gets: this one with its own limit.
    func forClaimValue(_ value: String) -> RateLimitPolicyConfig {
        var policy = self
        policy.limit = claimLimits[value] ?? limit
        policy.byClaim = nil
        policy.claimLimits = [:]
        return policy
    }
}
