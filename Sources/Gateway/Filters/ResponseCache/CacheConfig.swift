import Cache
import HTTPWire

/// `cache:` — where cached responses are kept (routes say what is cached).
public struct CacheStoreConfig: Decodable, Sendable, Equatable {
    /// The in-process cache's bound when there is no Redis (least recently used go first).
    public var maxSize = ByteSize(256 * 1024 * 1024)
    /// With Redis: an in-process copy of hot entries, kept coherent through pub/sub (0: none).
    public var nearCache = ByteSize(64 * 1024 * 1024)
    /// How long requests wait for another request's fetch of the same entry before going
    /// upstream themselves (nginx `proxy_cache_lock_timeout`).
    public var lockTimeout = ConfigDuration.seconds(5)
    /// Prefix of the gateway's Redis keys (several deployments can share one Redis).
    public var keyPrefix = "gw:c:"
    /// A response field with Cache-Control directives for this cache only: it takes precedence
    /// over `CDN-Cache-Control` (RFC 9213) and `Cache-Control`, and is not passed on (so an API
    /// can tell the gateway one lifetime and browsers another).
    public var controlHeader = "Gateway-Cache-Control"

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxSize = "max_size"
        case nearCache = "near_cache"
        case lockTimeout = "lock_timeout"
        case keyPrefix = "key_prefix"
        case controlHeader = "control_header"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxSize = try c.decode(.maxSize, default: maxSize)
        nearCache = try c.decode(.nearCache, default: nearCache)
        lockTimeout = try c.decode(.lockTimeout, default: lockTimeout)
        keyPrefix = try c.decode(.keyPrefix, default: keyPrefix)
        controlHeader = try c.decode(.controlHeader, default: controlHeader)
        guard !controlHeader.isEmpty, controlHeader.utf8.allSatisfy(ASCII.isTokenChar) else {
            throw DecodingError.dataCorruptedError(forKey: .controlHeader, in: c, debugDescription: "'\(controlHeader)' is not a header name")
        }
        if maxSize.bytes < 1024 * 1024 {
            throw DecodingError.dataCorruptedError(forKey: .maxSize, in: c, debugDescription: "must be at least 1MiB")
        }
    }
}

/// A route's `cache:` — its GET and HEAD responses are cached.
public struct RouteCacheConfig: Sendable {
    /// The freshness of responses that say nothing about theirs; nil with `ttl: origin` (only
    /// the origin's caching headers count, as in a general HTTP cache).
    public var ttl: ConfigDuration?
    /// nil: the request target on its host.
    public var key: CacheKeyTemplate
    /// Ceilings on serving stale (nil: not set; see `ResponseCachePolicy`).
    public var staleWhileRevalidate: ConfigDuration?
    public var staleIfError: ConfigDuration?
    public var maxBody = ByteSize(1024 * 1024)
    /// Shared by every caller; otherwise each identity has its own entry.
    public var shared = false
    public var statuses: Set<Int> = [200]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case ttl, key, shared, statuses
        case staleWhileRevalidate = "stale_while_revalidate"
        case staleIfError = "stale_if_error"
        case maxBody = "max_body"
    }

    /// - Parameter parameterNames: the route pattern's `{name}` parameters, for the key.
    init(from decoder: any Decoder, parameterNames: [String]) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if (try? c.decode(String.self, forKey: .ttl)) == "origin" {
            ttl = nil
        } else {
            ttl = try c.decode(ConfigDuration.self, forKey: .ttl)
        }
        let keyText = try c.decode(.key, default: CacheKeyTemplate.defaultText)
        do {
            key = try CacheKeyTemplate(keyText, parameterNames: parameterNames)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .key, in: c, debugDescription: error.description)
        }
        staleWhileRevalidate = try c.decodeIfPresent(ConfigDuration.self, forKey: .staleWhileRevalidate)
        staleIfError = try c.decodeIfPresent(ConfigDuration.self, forKey: .staleIfError)
        maxBody = try c.decode(.maxBody, default: maxBody)
        shared = try c.decode(.shared, default: false)
        if c.contains(.statuses) {
            let list = try c.decode([Int].self, forKey: .statuses)
            for status in list where !(200...599).contains(status) || (206...206).contains(status) || status == 304 {
                throw DecodingError.dataCorruptedError(forKey: .statuses, in: c,
                    debugDescription: "\(status) cannot be cached (final statuses 200-599, except 206 and 304)")
            }
            statuses = Set(list)
        }
        if let ttl, ttl.nanoseconds < 1_000_000_000 {
            throw DecodingError.dataCorruptedError(forKey: .ttl, in: c, debugDescription: "must be at least 1s")
        }
        if maxBody.bytes > 64 * 1024 * 1024 {
            throw DecodingError.dataCorruptedError(forKey: .maxBody, in: c, debugDescription: "must be at most 64MiB")
        }
    }
}
