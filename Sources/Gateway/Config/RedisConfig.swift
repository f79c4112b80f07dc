import Redis

/// `redis:` — the Redis shared by gateway instances (cache entries, invalidations, tokens).
/// A URL, or a mapping with timeouts; an empty string means no Redis.
public struct RedisConfig: Decodable, Sendable {
    public var url: RedisURL
    public var connectTimeout = ConfigDuration.milliseconds(500)
    /// How long a command may take before the cache is bypassed for that request.
    public var timeout = ConfigDuration.milliseconds(100)
    /// For `rediss://`: how the server is verified (the same keys as a pool's `tls:`).
    public var tls: UpstreamTLSConfig?
    /// The client context for `rediss://`, made by the loader (`GatewayConfig.loadTLS`).
    public internal(set) var tlsMaterial: UpstreamTLSMaterial?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, timeout, tls
        case connectTimeout = "connect_timeout"
    }

    public init(url: RedisURL) { self.url = url }

    public init(from decoder: any Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            url = try Self.parse(text, decoder.codingPath)
            return
        }
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try Self.parse(try c.decode(String.self, forKey: .url), decoder.codingPath + [CodingKeys.url])
        connectTimeout = try c.decode(.connectTimeout, default: connectTimeout)
        timeout = try c.decode(.timeout, default: timeout)
        if timeout.nanoseconds <= 0 || connectTimeout.nanoseconds <= 0 {
            throw DecodingError.dataCorruptedError(forKey: .timeout, in: c, debugDescription: "timeouts must be positive")
        }
        tls = try c.decodeIfPresent(UpstreamTLSConfig.self, forKey: .tls)
        if tls != nil, !url.tls {
            throw DecodingError.dataCorruptedError(forKey: .tls, in: c, debugDescription: "tls: applies to rediss:// URLs")
        }
    }

    private static func parse(_ text: String, _ path: [any CodingKey]) throws -> RedisURL {
        do { return try RedisURL(text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "\(error)"))
        }
    }
}
