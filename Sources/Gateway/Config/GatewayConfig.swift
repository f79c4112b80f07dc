import Redis
import Router

/// The gateway's configuration file, decoded. Every section has defaults a small deployment
/// can live with; unknown keys are errors. The README's "Configuration reference" documents
/// each key.
public struct GatewayConfig: Decodable, Sendable {
    /// `listen:`, one listener or a list; the first is the main one (`listen`).
    public var listeners: [ListenerConfig]
    /// The first listener's address.
    public var listen: ListenAddress { listeners[0].address }
    public var admin: ListenAddress
    /// Required when `admin` is reachable from other machines.
    public var adminToken: String?
    /// Event loops (threads) of the data path; nil = one per core.
    public var eventLoops: Int?
    public var debugHeaders: Bool
    public var accessLog: Bool
    /// Peers whose `X-Forwarded-For` (and region header) the gateway believes.
    public var trustedProxies: [CIDRBlock]
    public var limits: Limits
    public var timeouts: Timeouts
    public var upstream: UpstreamSettings
    /// In file order: the first primary pool takes writes until the databases say otherwise.
    public var pools: [PoolConfig]
    /// Methods that read (go to replicas); every other method writes.
    public var readMethods: [String]
    /// `%2F`/`%5C` in a request path (Envoy's `path_with_escaped_slashes_action`).
    public var escapedSlashes: EscapedSlashes
    public var regions: RegionsConfig
    /// Named CORS policies, referenced by routes.
    public var cors: [(name: String, policy: CORSConfig)]
    public var routes: [RouteConfig]
    /// PostgreSQL nodes behind the pools, by name: libpq connection URLs.
    public var databases: [(name: String, url: String)]
    public var health: HealthConfig
    public var outlierDetection: OutlierDetectionConfig
    public var retries: RetriesConfig
    public var consistency: ConsistencyConfig
    /// Who a request comes from (per-user cache entries, tokens kept per identity).
    public var identity: [IdentitySource]
    /// nil: no Redis (the cache and stores stay in this process).
    public var redis: RedisConfig?
    public var cache: CacheStoreConfig
    public var rateLimits: RateLimitConfig
    /// JWT verification: issuers, where tokens are, claims sent upstream.
    public var auth: AuthConfig
    /// Reloading by watching the file.
    public var reload: ReloadConfig
    /// W3C `traceparent` passed on or started.
    public var tracing: TracingConfig
    /// Upstream host names: where they are looked up, how often again.
    public var dns: DNSConfig
    /// Where a new gateway process (`--upgrade`) asks this one for its listening sockets
    /// (default: /tmp/gateway-upgrade-ADMINPORT.sock).
    public var upgradeSocket: String?
    public var upgradeSocketPath: String { upgradeSocket ?? "/tmp/gateway-upgrade-\(admin.port).sock" }
    /// What the loader found questionable but not wrong (an expired certificate), located like
    /// errors; logged at start and printed by `--check`.
    public internal(set) var warnings: [ConfigError] = []

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, admin
        case adminToken = "admin_token"
        case eventLoops = "event_loops"
        case debugHeaders = "debug_headers"
        case accessLog = "access_log"
        case trustedProxies = "trusted_proxies"
        case limits, timeouts, upstream, pools, regions, cors, routes, databases, health, retries, consistency
        case identity, redis, cache, reload, dns, auth, tracing
        case upgradeSocket = "upgrade_socket"
        case rateLimits = "rate_limits"
        case readMethods = "read_methods"
        case escapedSlashes = "escaped_slashes"
        case outlierDetection = "outlier_detection"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listeners = try c.decodeIfPresent(ListenerList.self, forKey: .listen)?.listeners
            ?? [ListenerConfig(address: ListenAddress(host: "0.0.0.0", port: 8080))]
        admin = try c.decode(.admin, default: ListenAddress(host: "127.0.0.1", port: 9901))
        adminToken = try c.decodeIfPresent(String.self, forKey: .adminToken)
        eventLoops = try Self.decodeEventLoops(c)
        debugHeaders = try c.decode(.debugHeaders, default: false)
        accessLog = try c.decode(.accessLog, default: true)
        trustedProxies = try c.decodeCIDRs(.trustedProxies)
        limits = try c.decode(.limits, default: Limits())
        timeouts = try c.decode(.timeouts, default: Timeouts())
        upstream = try c.decode(.upstream, default: UpstreamSettings())
        pools = try PoolConfig.decodeAll(c, key: .pools)
        readMethods = try c.decode(.readMethods, default: ["GET", "HEAD", "OPTIONS"]).map { $0.uppercased() }
        let escaped = try c.decode(.escapedSlashes, default: EscapedSlashes.reject.rawValue)
        guard let escapedSlashes = EscapedSlashes(rawValue: escaped) else {
            throw DecodingError.dataCorruptedError(forKey: .escapedSlashes, in: c, debugDescription: "expected reject, keep or unescape")
        }
        self.escapedSlashes = escapedSlashes
        regions = try c.decode(.regions, default: RegionsConfig())
        cors = []
        if c.contains(.cors) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .cors)
            for key in map.allKeys {
                cors.append((key.stringValue, try map.decode(CORSConfig.self, forKey: key)))
            }
        }
        routes = try c.decode(.routes, default: [])
        databases = []
        if c.contains(.databases) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .databases)
            for key in map.allKeys {
                let url = try map.decode(String.self, forKey: key)
                guard url.hasPrefix("postgresql://") || url.hasPrefix("postgres://") || url.contains("=") else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: map,
                        debugDescription: "expected a libpq URL such as postgresql://user@host:5432/db?sslmode=require")
                }
                databases.append((key.stringValue, url))
            }
        }
        health = try c.decode(.health, default: HealthConfig())
        outlierDetection = try c.decode(.outlierDetection, default: OutlierDetectionConfig())
        retries = try c.decode(.retries, default: RetriesConfig())
        consistency = try c.decode(.consistency, default: ConsistencyConfig())
        identity = IdentitySource.defaults
        if c.contains(.identity) {
            identity = try IdentitySource.decodeList(try c.decode([String].self, forKey: .identity), codingPath: c.codingPath + [CodingKeys.identity])
        }
        // `redis: ${REDIS_URL:-}` with the variable unset means no Redis.
        if let text = try? c.decode(String.self, forKey: .redis), text.isEmpty {
            redis = nil
        } else {
            redis = try c.decodeIfPresent(RedisConfig.self, forKey: .redis)
        }
        cache = try c.decode(.cache, default: CacheStoreConfig())
        rateLimits = try c.decode(.rateLimits, default: RateLimitConfig())
        auth = try c.decode(.auth, default: AuthConfig())
        reload = try c.decode(.reload, default: ReloadConfig())
        tracing = try c.decode(.tracing, default: TracingConfig())
        dns = try c.decode(.dns, default: DNSConfig())
        upgradeSocket = try c.decodeIfPresent(String.self, forKey: .upgradeSocket)
        if let upgradeSocket, upgradeSocket.isEmpty || upgradeSocket.utf8.count > 100 {
            throw DecodingError.dataCorruptedError(forKey: .upgradeSocket, in: c, debugDescription: "a path of 1...100 bytes")
        }
    }

    private static func decodeEventLoops(_ c: KeyedDecodingContainer<CodingKeys>) throws -> Int? {
        guard c.contains(.eventLoops) else { return nil }
        if let text = try? c.decode(String.self, forKey: .eventLoops), text == "auto" { return nil }
        let count = try c.decode(Int.self, forKey: .eventLoops)
        guard (1...256).contains(count) else {
            throw DecodingError.dataCorruptedError(forKey: .eventLoops, in: c, debugDescription: "expected 'auto' or 1...256")
        }
        return count
    }

    /// Checks that need the whole file: references between sections, required companions.
    func validate() throws(ConfigValidationError) {
        if pools.isEmpty {
            throw ConfigValidationError(["pools"], "at least one pool with at least one server is required")
        }
        if !admin.isLoopback, (adminToken ?? "").isEmpty {
            throw ConfigValidationError(["admin_token"],
                "required when the admin listener (\(admin)) is not on loopback")
        }
        for listener in listeners where listener.address == admin && admin.port != 0 {
            throw ConfigValidationError(["admin"], "the admin listener cannot share the address of 'listen'")
        }
        for (index, listener) in listeners.enumerated() where listener.address.port != 0 {
            if listeners[..<index].contains(where: { $0.address == listener.address }) {
                throw ConfigValidationError(["listen", .index(index)], "\(listener.address) is listed twice")
            }
        }
        if listeners.contains(where: { $0.redirectHTTPS != nil }), !listeners.contains(where: { $0.tls != nil }) {
            throw ConfigValidationError(["listen"], "redirect_https sends clients to HTTPS, but no listener has tls:")
        }
        if !pools.contains(where: { $0.role == .primary }) {
            throw ConfigValidationError(["pools"], "no pool has role 'primary': writes would have nowhere to go")
        }
        try validateRouting()
        try validateAuth()
    }

    /// Auth modes, `jwt:` identities and `by_claim` limits need an issuer to verify tokens with.
    private func validateAuth() throws(ConfigValidationError) {
        guard auth.issuers.isEmpty else { return }
        if auth.defaultMode != .none {
            throw ConfigValidationError(["auth", "default"], "auth: \(auth.defaultMode.rawValue) needs at least one issuer under auth.issuers")
        }
        for (index, route) in routes.enumerated() where route.auth != nil && route.auth != AuthMode.none {
            throw ConfigValidationError(["routes", .index(index), "auth"], "auth: \(route.auth!.rawValue) needs at least one issuer under auth.issuers")
        }
        if identity.contains(where: { if case .claim = $0 { true } else { false } }) {
            throw ConfigValidationError(["identity"], "jwt: sources need verified tokens: configure auth.issuers")
        }
        for (name, policy) in rateLimits.policies where policy.byClaim != nil {
            throw ConfigValidationError(["rate_limits", "policies", .key(name), "by_claim"], "by_claim needs verified tokens: configure auth.issuers")
        }
    }

    /// Every region, pool and CORS policy a key refers to must exist.
    private func validateRouting() throws(ConfigValidationError) {
        let regionNames = Set(knownRegions)
        for pool in pools {
            if pool.role == .replica && pool.region == nil {
                throw ConfigValidationError(["pools", .key(pool.name), "region"], "a replica pool needs a region (reads are routed by region)")
            }
        }
        if let name = regions.defaultRegion, !regionNames.contains(name) {
            throw ConfigValidationError(["regions", "default"], "unknown region '\(name)'; regions are named by pools: \(knownRegions.joined(separator: ", "))")
        }
        for (key, region) in regions.header?.map ?? [:] where !regionNames.contains(region) {
            throw ConfigValidationError(["regions", "header", "map", .key(key)], "unknown region '\(region)'")
        }
        for entry in regions.cidrs where !regionNames.contains(entry.region) {
            throw ConfigValidationError(["regions", "cidrs", .key(entry.block.description)], "unknown region '\(entry.region)'")
        }
        for entry in regions.fallback {
            for name in [entry.region] + entry.next where !regionNames.contains(name) {
                throw ConfigValidationError(["regions", "fallback", .key(entry.region)], "unknown region '\(name)'")
            }
        }
        for method in readMethods where !method.allSatisfy({ $0.isLetter || $0 == "-" }) {
            throw ConfigValidationError(["read_methods"], "'\(method)' is not a method")
        }
        for pool in pools {
            if pool.role == .primary, pool.database == nil, !databases.isEmpty {
                throw ConfigValidationError(["pools", .key(pool.name), "database"],
                    "with databases: configured, a primary pool names its database (writes follow the database that is primary)")
            }
            if let database = pool.database, !databases.contains(where: { $0.name == database }) {
                throw ConfigValidationError(["pools", .key(pool.name), "database"],
                    "no database named '\(database)' under databases: (\(databases.map(\.name).joined(separator: ", ")))")
            }
        }
        if let policy = rateLimits.defaultPolicy, !rateLimits.policies.contains(where: { $0.name == policy }) {
            throw ConfigValidationError(["rate_limits", "default"], "no policy named '\(policy)' under rate_limits.policies")
        }
        if consistency.store == .redis, redis == nil {
            throw ConfigValidationError(["consistency", "store"], "store: redis needs redis: configured")
        }
        for (name, policy) in rateLimits.policies where policy.store == .redis && redis == nil {
            throw ConfigValidationError(["rate_limits", "policies", .key(name), "store"], "store: redis needs redis: configured")
        }
        if consistency.mode == .lsn, databases.isEmpty {
            throw ConfigValidationError(["consistency", "mode"],
                "lsn mode compares WAL positions: configure databases: and each pool's database")
        }
        for (index, route) in routes.enumerated() {
            if route.to != "auto" && route.to != "primary" && !pools.contains(where: { $0.name == route.to }) {
                throw ConfigValidationError(["routes", .index(index), "to"],
                    "'\(route.to)' is neither auto, primary nor a pool (\(pools.map(\.name).joined(separator: ", ")))")
            }
            if let cors = route.cors, !self.cors.contains(where: { $0.name == cors }) {
                throw ConfigValidationError(["routes", .index(index), "cors"], "no CORS policy named '\(cors)' under cors:")
            }
            if let policy = route.rateLimit, policy != "none", !rateLimits.policies.contains(where: { $0.name == policy }) {
                throw ConfigValidationError(["routes", .index(index), "rate_limit"],
                    "no policy named '\(policy)' under rate_limits.policies (or 'none')")
            }
            for method in route.methods ?? [] where !method.allSatisfy({ $0.isLetter || $0 == "-" }) {
                throw ConfigValidationError(["routes", .index(index), "match", "methods"], "'\(method)' is not a method")
            }
        }
    }

    /// Reads every TLS listener's files (certificates, keys, client CAs) and makes its context,
    /// and the client context of every pool with `https://` servers; returns the warnings (expired certificates). `directory`: what relative paths are
    /// relative to (the configuration file's folder).
    mutating func loadTLS(directory: String) throws(ConfigValidationError) -> [ConfigValidationError] {
        var warnings: [ConfigValidationError] = []
        for index in listeners.indices {
            guard let tls = listeners[index].tls else { continue }
            listeners[index].material = try TLSServerMaterial(
                settings: tls, path: listeners[index].configPath + ["tls"], directory: directory, warnings: &warnings)
        }
        for index in pools.indices where pools[index].servers.contains(where: \.url.secure) {
            pools[index].tlsMaterial = try UpstreamTLSMaterial(
                settings: pools[index].tls ?? UpstreamTLSConfig(), path: ["pools", .key(pools[index].name), "tls"],
                directory: directory, warnings: &warnings)
        }
        if var redis, redis.url.tls {
            redis.tlsMaterial = try UpstreamTLSMaterial(
                settings: redis.tls ?? UpstreamTLSConfig(), path: ["redis", "tls"], directory: directory, warnings: &warnings)
            self.redis = redis
        }
        return warnings
    }

    /// Region names, in first-mention order: pools, then the regions section.
    var knownRegions: [String] {
        var names: [String] = []
        func add(_ name: String?) {
            if let name, !names.contains(name) { names.append(name) }
        }
        for pool in pools { add(pool.region) }
        return names
    }
}

/// What a request path's escaped slashes (`%2F`) and backslashes (`%5C`) mean. Some upstreams
/// decode them before routing, some do not: a gateway that routes `/public%2F..%2Fadmin` as one
/// segment under `/public` may forward what the upstream serves as `/admin`.
public enum EscapedSlashes: String, Sendable {
    /// 400: no request can mean two things (the default).
    case reject
    /// Data, in routing and in the forwarded path alike.
    case keep
    /// Decoded before the path is normalized, routed and forwarded.
    case unescape
}
