import Router

/// A named group of interchangeable upstream servers (API servers in front of one database).
public struct PoolConfig: Sendable {
    public enum Role: String, Decodable, Sendable {
        case primary, replica
    }

    public var name: String
    public var role: Role
    public var region: String?
    public var servers: [ServerConfig]
    public var balancer: BalancerKind
    /// The entry of `databases:` these servers use: its role decides where writes go and its
    /// lag whether the pool gets reads.
    public var database: String?
    /// How the pool's `https://` servers are reached.
    public var tls: UpstreamTLSConfig?
    /// How often the host names of its servers are looked up again (nil: `dns.resolve`).
    public var resolve: ConfigDuration?
    /// The TLS context of the pool's `https://` servers, made by the loader
    /// (`GatewayConfig.loadTLS`); nil when the pool has none.
    public internal(set) var tlsMaterial: UpstreamTLSMaterial?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case role, region, servers, balancer, database, tls, resolve
    }

    init(name: String, decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.name = name
        role = try c.decode(.role, default: .primary)
        region = try c.decodeIfPresent(String.self, forKey: .region)
        database = try c.decodeIfPresent(String.self, forKey: .database)
        servers = try c.decode([ServerConfig].self, forKey: .servers)
        let balancerName = try c.decode(.balancer, default: BalancerKind.leastRequest.rawValue)
        guard let balancer = BalancerKind(rawValue: balancerName) else {
            throw DecodingError.dataCorruptedError(forKey: .balancer, in: c,
                debugDescription: "expected \(BalancerKind.allCases.map(\.rawValue).joined(separator: " or ")); got '\(balancerName)'")
        }
        self.balancer = balancer
        if servers.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .servers, in: c, debugDescription: "a pool needs at least one server")
        }
        resolve = try c.decodeIfPresent(ConfigDuration.self, forKey: .resolve)
        if let resolve, resolve < .seconds(1) {
            throw DecodingError.dataCorruptedError(forKey: .resolve, in: c, debugDescription: "at least 1s")
        }
        tls = try c.decodeIfPresent(UpstreamTLSConfig.self, forKey: .tls)
        if tls != nil, !servers.contains(where: \.url.secure) {
            throw DecodingError.dataCorruptedError(forKey: .tls, in: c,
                debugDescription: "tls: applies to https:// servers, and this pool has none")
        }
    }

    /// Decodes the `pools` mapping in file order.
    static func decodeAll<K: CodingKey>(_ container: KeyedDecodingContainer<K>, key: K) throws -> [PoolConfig] {
        guard container.contains(key) else { return [] }
        let pools = try container.nestedContainer(keyedBy: AnyCodingKey.self, forKey: key)
        return try pools.allKeys.map { name in
            guard name.stringValue.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw DecodingError.dataCorruptedError(
                    forKey: name, in: pools, debugDescription: "pool names use letters, digits, '-' and '_'")
            }
            return try PoolConfig(name: name.stringValue, decoder: pools.superDecoder(forKey: name))
        }
    }
}

/// One upstream server: a URL, or `{ url: ..., weight: N }`.
public struct ServerConfig: Decodable, Sendable, Equatable {
    public var url: UpstreamURL
    public var weight: Int

    public init(url: UpstreamURL, weight: Int = 1) {
        self.url = url
        self.weight = weight
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, weight
    }

    public init(from decoder: any Decoder) throws {
        if let url = try? decoder.singleValueContainer().decode(UpstreamURL.self) {
            self.init(url: url)
            return
        }
        if (try? decoder.singleValueContainer().decode(String.self)) != nil {
            // A string that is not a valid URL: rethrow the URL's own message.
            _ = try decoder.singleValueContainer().decode(UpstreamURL.self)
        }
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let weight = try c.decode(.weight, default: 1)
        if !(1...1000).contains(weight) {
            throw DecodingError.dataCorruptedError(forKey: .weight, in: c, debugDescription: "weight must be 1...1000")
        }
        self.init(url: try c.decode(UpstreamURL.self, forKey: .url), weight: weight)
    }
}
