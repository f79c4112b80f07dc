import Cache
import HTTPWire
import Router

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
    /// nil: `auth.default`.
    public var auth: AuthMode?
    /// Headers added to every response of the route, in file order.
    public var responseHeaders: [(name: String, value: String)]
    /// A GET asking to switch protocols (`Upgrade`, e.g. WebSocket) is forwarded with its
    /// upgrade and tunnelled after a 101; false: `Upgrade` is dropped like any hop-by-hop field.
    public var upgrade = true

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, match, to, cors, cache, invalidates, upgrade, auth
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
        auth = try c.decodeIfPresent(AuthMode.self, forKey: .auth)
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
        upgrade = try c.decode(.upgrade, default: upgrade)
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
