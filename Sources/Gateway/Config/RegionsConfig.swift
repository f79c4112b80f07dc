import Router

/// `regions:` — how a client's region is found, and where its reads go when its own region has
/// nothing to offer.
public struct RegionsConfig: Decodable, Sendable {
    /// The region of clients nothing else places; defaults to the primary pool's region.
    public var defaultRegion: String?
    public var header: RegionHeaderConfig?
    /// Client address blocks → region, longest prefix first.
    public var cidrs: [(block: CIDRBlock, region: String)]
    /// Region → regions to try next, in order (then the primary).
    public var fallback: [(region: String, next: [String])]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case defaultRegion = "default"
        case header, cidrs, fallback
    }

    public init() {
        cidrs = []
        fallback = []
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultRegion = try c.decodeIfPresent(String.self, forKey: .defaultRegion)
        header = try c.decodeIfPresent(RegionHeaderConfig.self, forKey: .header)
        cidrs = []
        if c.contains(.cidrs) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .cidrs)
            for key in map.allKeys {
                guard let block = CIDRBlock(key.stringValue) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: map, debugDescription: "'\(key.stringValue)' is not an address block such as 10.1.0.0/16")
                }
                cidrs.append((block, try map.decode(String.self, forKey: key)))
            }
        }
        fallback = []
        if c.contains(.fallback) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .fallback)
            for key in map.allKeys {
                fallback.append((key.stringValue, try map.decode([String].self, forKey: key)))
            }
        }
    }
}

/// `regions.header`: a header an edge (CloudFront, Cloudflare, a load balancer) sets, and how its
/// values map to regions. Believed only from `trusted_proxies`.
public struct RegionHeaderConfig: Decodable, Sendable {
    public var name: String
    public var map: [String: String]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, map
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        map = try c.decode(.map, default: [:])
    }
}
