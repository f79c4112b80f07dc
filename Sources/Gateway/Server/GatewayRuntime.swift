import Cache
import Logging
import NIOCore
import Redis
import Router

/// A pool as the data path sees it.
final class PoolRuntime: Sendable {
    let index: Int
    let name: String
    let role: PoolConfig.Role
    let region: String?
    let servers: [UpstreamServer]
    let balancer: BalancerKind
    /// Where the pool's request counters are on each loop (`GatewayRuntime.statsSlots`).
    let statsSlot: Int

    init(index: Int, name: String, role: PoolConfig.Role, region: String?, servers: [UpstreamServer], balancer: BalancerKind,
         statsSlot: Int) {
        self.index = index
        self.statsSlot = statsSlot
        self.name = name
        self.role = role
        self.region = region
        self.servers = servers
        self.balancer = balancer
    }
}

/// Everything the data path reads that comes from the configuration, compiled once: upstream
/// addresses resolved, pools indexed, metric handles created. Immutable and shared by all
/// event loops.
final class GatewayRuntime: Sendable {
    let config: GatewayConfig
    let pools: [PoolRuntime]
    let servers: [UpstreamServer]
    let router: Router
    /// Per region, the headers that tell the upstream where a request was routed:
    /// `[replica, primary]` variants of X-Gateway-Target and X-Gateway-Region.
    /// Per region, for reads and for writes: the routing headers sent upstream, as header lines.
    let routingFields: [[[UInt8]]]
    let trustedProxies: CIDRSet
    let timeouts: ClientTimeouts
    let consistency: ConsistencyRuntime
    let identity: ClientIdentity
    /// nil without `redis:`.
    let redis: RedisClient?
    /// Failures in a row per server, across event loops (passive outlier detection).
    let failureStreaks: FailureStreaks
    /// nil when no route caches or invalidates.
    let cache: CacheRuntime?
    /// nil without `auth.issuers`.
    let auth: AuthRuntime?
    /// nil when no rate limit policy is configured.
    let rateLimits: RateLimitRuntime?
    /// Each route's filters.
    let filterChains: FilterChains
    /// Per pool, its index in `databases:`.
    let poolDatabase: [Int?]
    let metrics: GatewayMetrics
    let logger: Logger
    /// Where access log lines go; nil when `access_log: false`.
    let accessLog: (any AccessLogOutput)?
    /// Where they would go (a reload may turn the access log on).
    let accessLogOutput: (any AccessLogOutput)?
    /// The request counters' slots on each loop, by name: requests no pool answered, cache
    /// answers, then every pool name configured since start (a reload never reuses a slot for
    /// another name, so the counters a scrape sums stay monotonic).
    let statsSlots: [String]
    static let unroutedStatsSlot = 0
    static let cacheStatsSlot = 1
    /// The runtime this one replaced, and per server of this one, its id there if the reload
    /// kept it (same pool, URL, address, settings and TLS): its pools and state carry over.
    private let carried: (from: ObjectIdentifier, servers: [Int?])?

    /// - Parameter eventLoops: the data path's loops (each gets a Redis connection); none in
    ///   tests that drive handlers without a server.
    /// - Parameter previous: the runtime a reload replaces: its Redis client, cache store,
    ///   in-process rate-limit buckets and counter slots are kept where the new configuration
    ///   has the same settings for them.
    ///   `answers`: the addresses of the host names in `pools:` (see `UpstreamNames`).
    init(config: GatewayConfig, metrics: GatewayMetrics, logger: Logger, accessLog: (any AccessLogOutput)?, eventLoops: [EventLoop] = [],
         previous: GatewayRuntime? = nil, answers: [String: DNSResolver.Answer] = [:]) throws {
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self.accessLog = config.accessLog ? accessLog : nil
        accessLogOutput = accessLog
        var statsSlots = previous?.statsSlots ?? ["-", "cache"]
        var servers: [UpstreamServer] = []
        var pools: [PoolRuntime] = []
        for (poolIndex, pool) in config.pools.enumerated() {
            var poolServers: [UpstreamServer] = []
            for server in pool.servers {
                if server.url.secure, pool.tlsMaterial == nil {
                    // Never cleartext to an https:// URL: the loader makes the context.
                    throw ConfigError(file: "", key: "pools.\(pool.name).tls", message: "\(server.url) has no TLS context (load the file with ConfigLoader)")
                }
                for (address, ip) in try Self.addresses(of: server.url, answers: answers) {
                    let upstream = UpstreamServer(
                        id: servers.count, poolName: pool.name, url: server.url, address: address,
                        weight: server.weight, settings: config.upstream, tls: pool.tlsMaterial, resolvedFrom: ip)
                    servers.append(upstream)
                    poolServers.append(upstream)
                }
            }
            if !statsSlots.contains(pool.name) { statsSlots.append(pool.name) }
            pools.append(PoolRuntime(
                index: poolIndex, name: pool.name, role: pool.role, region: pool.region,
                servers: poolServers, balancer: pool.balancer, statsSlot: statsSlots.firstIndex(of: pool.name)!))
        }
        self.servers = servers
        failureStreaks = FailureStreaks(servers: servers.count)
        self.pools = pools
        self.statsSlots = statsSlots
        carried = previous.map { previous in
            (ObjectIdentifier(previous), servers.map { server in
                previous.servers.firstIndex { Self.sameServer($0, server, previous.config, config) }
            })
        }
        self.router = try RouterCompiler.compile(config, pools: pools)
        self.routingFields = router.regions.names.map { region in
            ["replica", "primary"].map { Array("X-Gateway-Target: \($0)\r\nX-Gateway-Region: \(region)\r\n".utf8) }
        }
        self.trustedProxies = CIDRSet(config.trustedProxies)
        self.timeouts = ClientTimeouts(config.timeouts)
        self.consistency = ConsistencyRuntime(config.consistency, previous: previous?.consistency)
        self.identity = ClientIdentity(sources: config.identity)
        if let redis = config.redis, let previous, let client = previous.redis, let before = previous.config.redis,
           Self.sameRedis(before, redis) {
            self.redis = client
        } else if let redis = config.redis, !eventLoops.isEmpty {
            self.redis = RedisClient(
                settings: .init(url: redis.url, connectTimeout: redis.connectTimeout.timeAmount, commandTimeout: redis.timeout.timeAmount,
                                addTLSHandler: redis.tlsMaterial.map { material in
                                    let name = material.serverName(forHost: redis.url.host)
                                    return { channel in try material.addHandler(to: channel, serverName: name) }
                                }),
                eventLoops: eventLoops, logger: logger)
        } else {
            self.redis = nil
        }
        let redisClient = self.redis
        let keptStore = previous.flatMap { previous in
            previous.config.cache == config.cache && previous.redis === redisClient ? previous.cache?.store : nil
        }
        cache = CacheRuntime.needed(by: config)
            ? CacheRuntime(config: config, redis: self.redis, subscriberLoop: eventLoops.first, logger: logger, store: keptStore) : nil
        auth = AuthRuntime(config: config, previous: previous?.auth, logger: logger)
        rateLimits = RateLimitRuntime(config: config, previous: previous?.rateLimits)
        filterChains = FilterChains(config: config, router: router, auth: auth, rateLimits: rateLimits, cache: cache, consistency: consistency)
        self.poolDatabase = config.pools.map { pool in pool.database.flatMap { name in config.databases.firstIndex { $0.name == name } } }
    }

    /// The scripts the configured filters run in Redis, loaded on every new connection.
    var redisScripts: [RedisScript] {
        (cache == nil ? [] : ResponseCache.scripts) + (rateLimits == nil ? [] : RedisRateLimiter.scripts)
            + (consistency.sharedStore ? RedisConsistencyStore.scripts : [])
    }

    /// Per server, its id in `previous` if a reload from `previous` to this runtime kept it.
    func carriedServers(from previous: GatewayRuntime) -> [Int?]? {
        guard let carried, carried.from == ObjectIdentifier(previous) else { return nil }
        return carried.servers
    }

    /// The servers a reload from `previous` removed or changed.
    func droppedServers(from previous: GatewayRuntime) -> [UpstreamServer] {
        let kept = Set((carriedServers(from: previous) ?? []).compactMap { $0 })
        return previous.servers.filter { !kept.contains($0.id) }
    }

    /// A server a reload keeps: same pool, URL, address, connection settings and TLS settings.
    private static func sameServer(_ old: UpstreamServer, _ new: UpstreamServer, _ oldConfig: GatewayConfig, _ newConfig: GatewayConfig) -> Bool {
        guard old.poolName == new.poolName, old.url == new.url, old.address == new.address, old.settings == new.settings else { return false }
        let oldTLS = oldConfig.pools.first { $0.name == old.poolName }?.tls
        let newTLS = newConfig.pools.first { $0.name == new.poolName }?.tls
        return oldTLS == newTLS
    }

    private static func sameRedis(_ old: RedisConfig, _ new: RedisConfig) -> Bool {
        old.url == new.url && old.connectTimeout == new.connectTimeout && old.timeout == new.timeout && old.tls == new.tls
    }

    /// A server's addresses: its IP, or every address its host name has (from `answers`; the
    /// resolved IP goes with each, to name the server).
    private static func addresses(of url: UpstreamURL, answers: [String: DNSResolver.Answer]) throws -> [(SocketAddress, String?)] {
        if let ip = IPAddress(url.host) {
            return [(try SocketAddress(ipAddress: ip.description, port: url.port), nil)]
        }
        guard let answer = answers[url.host] else {
            throw ConfigError(file: "", key: "pools", message: "cannot resolve upstream host '\(url.host)'")
        }
        return try answer.addresses.map { (try SocketAddress(ipAddress: $0, port: url.port), $0) }
    }
}

/// Client timeouts converted once: turning a `Duration` into a `TimeAmount` is arithmetic the
/// data path should not repeat on every request.
struct ClientTimeouts: Sendable {
    let clientHeader: TimeAmount
    let clientBody: TimeAmount
    let keepalive: TimeAmount
    let send: TimeAmount
    let tunnel: TimeAmount

    init(_ timeouts: Timeouts) {
        clientHeader = timeouts.clientHeader.timeAmount
        clientBody = timeouts.clientBody.timeAmount
        keepalive = timeouts.keepalive.timeAmount
        send = timeouts.send.timeAmount
        tunnel = timeouts.tunnel.timeAmount
    }
}
