import Cache
import HTTPWire
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

/// `cors.NAME`: one CORS policy, referenced by routes.
public struct CORSConfig: Decodable, Sendable {
    public var allowOrigins: [String]
    public var allowMethods: [String]
    public var allowHeaders: [String]
    public var exposeHeaders: [String]
    public var allowCredentials: Bool
    public var maxAge: ConfigDuration?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case allowOrigins = "allow_origins"
        case allowMethods = "allow_methods"
        case allowHeaders = "allow_headers"
        case exposeHeaders = "expose_headers"
        case allowCredentials = "allow_credentials"
        case maxAge = "max_age"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allowOrigins = try c.decode([String].self, forKey: .allowOrigins)
        allowMethods = try c.decode(.allowMethods, default: ["GET", "HEAD", "POST"])
        allowHeaders = try c.decode(.allowHeaders, default: [])
        exposeHeaders = try c.decode(.exposeHeaders, default: [])
        allowCredentials = try c.decode(.allowCredentials, default: false)
        maxAge = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxAge)
        if allowCredentials && (allowOrigins.contains("*") || allowHeaders.contains("*")) {
            throw decoder.invalidValue("'*' cannot be combined with allow_credentials: browsers refuse it")
        }
        if allowOrigins.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .allowOrigins, in: c, debugDescription: "list at least one origin")
        }
    }
}

/// One entry of `routes:`. The first route whose `match` holds decides.
public struct RouteConfig: Decodable, Sendable {
    public var name: String?
    public var path: PathPattern
    public var methods: [String]?
    public var hosts: [String]
    public var headers: [(name: String, value: String?)]
    /// `auto`, `primary`, or a pool name.
    public var to: String
    public var cors: String?
    /// GET and HEAD responses of this route are cached.
    public var cache: RouteCacheConfig?
    /// Cache keys a successful write on this route removes (templates, like a cache key).
    public var invalidates: [CacheKeyTemplate]
    /// A policy of `rate_limits.policies`, or `none` (nil: the default policy).
    public var rateLimit: String?
    /// Headers added to every response of the route, in file order.
    public var responseHeaders: [(name: String, value: String)]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, match, to, cors, cache, invalidates
        case rateLimit = "rate_limit"
        case responseHeaders = "response_headers"
    }

    enum MatchKeys: String, CodingKey, CaseIterable {
        case path, methods, host, headers
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        to = try c.decode(.to, default: "auto")
        cors = try c.decodeIfPresent(String.self, forKey: .cors)
        rateLimit = try c.decodeIfPresent(String.self, forKey: .rateLimit)
        let matchDecoder = try c.superDecoder(forKey: .match)
        try matchDecoder.rejectUnknownKeys(MatchKeys.self)
        let m = try matchDecoder.container(keyedBy: MatchKeys.self)
        let pathText = try m.decode(.path, default: "/**")
        do {
            path = try PathPattern(pathText)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .path, in: m, debugDescription: error.description)
        }
        methods = try m.decodeIfPresent([String].self, forKey: .methods).map { $0.map { $0.uppercased() } }
        if let hosts = try? m.decode(String.self, forKey: .host) {
            self.hosts = [hosts]
        } else {
            hosts = try m.decode(.host, default: [])
        }
        headers = []
        if m.contains(.headers) {
            let map = try m.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .headers)
            for key in map.allKeys {
                let value = try map.decode(String.self, forKey: key)
                headers.append((key.stringValue, value == "*" ? nil : value))
            }
        }
        responseHeaders = try Self.decodeResponseHeaders(c)
        let parameterNames = path.parameterNames
        cache = c.contains(.cache) ? try RouteCacheConfig(from: try c.superDecoder(forKey: .cache), parameterNames: parameterNames) : nil
        invalidates = []
        if c.contains(.invalidates) {
            var list = try c.nestedUnkeyedContainer(forKey: .invalidates)
            while !list.isAtEnd {
                let text = try list.decode(String.self)
                do {
                    invalidates.append(try CacheKeyTemplate(text, parameterNames: parameterNames))
                } catch {
                    throw DecodingError.dataCorruptedError(in: list, debugDescription: error.description)
                }
            }
        }
    }

    /// The gateway frames and persists messages itself; these it will not let a route set.
    private static let managedHeaders: Set<String> = [
        "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade", "te", "trailer", "proxy-connection",
        "date", "x-request-id",
    ]

    private static func decodeResponseHeaders(_ c: KeyedDecodingContainer<CodingKeys>) throws -> [(name: String, value: String)] {
        guard c.contains(.responseHeaders) else { return [] }
        let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .responseHeaders)
        var headers: [(name: String, value: String)] = []
        for key in map.allKeys {
            let name = key.stringValue
            let value = try map.decode(String.self, forKey: key)
            guard !name.isEmpty, name.utf8.allSatisfy(ASCII.isTokenChar) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: map, debugDescription: "'\(name)' is not a header name")
            }
            guard !managedHeaders.contains(name.lowercased()) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: map,
                    debugDescription: "'\(name)' is set by the gateway itself (framing, persistence, request IDs)")
            }
            guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: map,
                    debugDescription: "the value of '\(name)' may not contain control characters such as CR or LF")
            }
            headers.append((name, value.trimmingSpaces()))
        }
        return headers
    }
}
