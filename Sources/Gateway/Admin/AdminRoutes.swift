import Foundation
import Cache
import NIOCore
import NIOHTTP1
import Redis
import Router

/// The admin API's endpoints and their JSON shapes.
struct AdminRoutes {
    let gateway: GatewayServer

    struct Health: Encodable {
        var status: String
        var version: String
        var uptimeSeconds: Double
        var eventLoops: Int
        var clientConnections: Int
        var libraries: [String: String]
        var pools: [Pool]
        /// The last configuration reload (null before the first).
        var lastReload: ReloadReport?

        struct Pool: Encodable {
            var name: String
            var role: String
            var region: String?
            var balancer: String
            var servers: [String]
            /// Servers that may take requests now.
            var available: Int
        }
    }

    struct Upstream: Encodable {
        var pool: String
        var server: String
        var weight: Int
        /// ready | maintenance
        var state: String
        /// Whether the Router may send it new requests now.
        var available: Bool
        var connectionsOpen: Int
        var connectionsIdle: Int
        var requestsWaiting: Int
        var connectionsOpenedTotal: Int
        var connectFailuresTotal: Int
        /// Active checks: up | down | unchecked (no `health.path`).
        var health: String
        var lastCheck: Check?
        /// Ejected by passive outlier detection on at least one event loop.
        var ejected: Bool
        var ejections: Int
        var requestsInFlight: Int

        struct Check: Encodable {
            var secondsAgo: Double
            var milliseconds: Double?
            var status: Int?
            var error: String?
        }
    }

    struct Database: Encodable {
        var name: String
        var reachable: Bool
        /// primary | replica | unknown
        var role: String
        var lsn: String?
        var lagBytes: UInt64?
        var lagSeconds: Double?
        /// fresh | stale | unknown (replicas get reads only while fresh)
        var freshness: String
        var replayPaused: Bool?
        /// Client connections the database has, and its `max_connections`.
        var connections: Int?
        var maxConnections: Int?
        var lastProbeMilliseconds: Double?
        var lastError: String?
        var probes: Int
        var probeFailures: Int
    }

    struct Upstreams: Encodable {
        var upstreams: [Upstream]
        var databases: [Database]
        /// The pool taking writes now, or null when none does.
        var writePool: String?
        var writeProblem: String?
    }

    func respond(to head: HTTPRequestHead) async -> AdminResponse {
        if let token = gateway.config.adminToken, !token.isEmpty, !Self.authorized(head.headers.first(name: "authorization"), token: token) {
            // The challenge lets a browser ask for the token (as the password) for the dashboard.
            var response = AdminResponse.error(.unauthorized, "a bearer token is required (Authorization: Bearer ...)")
            response.headers = [("WWW-Authenticate", "Basic realm=\"gateway admin\", charset=\"UTF-8\"")]
            return response
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if head.method == .POST, path.hasPrefix("/admin/upstreams/") {
            return setServerState(path)
        }
        if head.method == .POST, path == "/admin/reload" {
            return await reload()
        }
        guard head.method == .GET || head.method == .HEAD else {
            return .error(.methodNotAllowed, "GET, or POST /admin/reload, or POST /admin/upstreams/POOL/SERVER/(maintenance|ready)")
        }
        switch path {
        case "/":
            return AdminResponse(status: .ok, contentType: "text/html; charset=utf-8", body: Array(DashboardPage.html.utf8), headers: [
                ("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"),
                ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
            ])
        case "/health":
            return await health()
        case "/metrics":
            return await metrics()
        case "/admin/upstreams":
            return await upstreams()
        case "/admin/explain":
            let view = await self.view()
            return await RouteExplain(gateway: gateway).explain(
                uri: head.uri, generation: view.generation, routing: view.routing, snapshot: view.snapshot, inputs: view.inputs)
        default:
            return .error(.notFound, "unknown endpoint; try / (the dashboard), /health, /metrics, /admin/upstreams, /admin/explain")
        }
    }

    /// `Bearer TOKEN`, or HTTP Basic with the token as the password (any user name): what a
    /// browser sends for the dashboard after asking.
    static func authorized(_ authorization: String?, token: String) -> Bool {
        guard let authorization else { return false }
        if authorization == "Bearer \(token)" { return true }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Data(base64Encoded: String(parts[1])).map({ String(decoding: $0, as: UTF8.self) }),
              let colon = decoded.firstIndex(of: ":") else { return false }
        return decoded[decoded.index(after: colon)...] == token
    }

    /// One configuration's view for a whole reply: its routing state, the control plane's
    /// inputs and the loops' counts all use the same server and pool numbers, even while a
    /// reload is switching loops over.
    private func view() async -> (generation: GatewayServer.Generation, routing: RoutingState, inputs: RoutingControl.Inputs,
                                  snapshot: GatewaySnapshot) {
        var generation = gateway.generation
        var routing = gateway.routing.snapshot()
        for _ in 0..<500 where routing.runtime !== generation.runtime {
            try? await Task.sleep(for: .milliseconds(2))
            generation = gateway.generation
            routing = gateway.routing.snapshot()
        }
        return (generation, routing.state, routing.inputs, await gateway.snapshot(of: generation.runtime))
    }

    private func health() async -> AdminResponse {
        let view = await self.view()
        let routing = view.routing, runtime = view.generation.runtime, snapshot = view.snapshot
        let draining = gateway.isDraining
        let health = Health(
            status: draining ? "draining" : "ok",
            version: GatewayServer.version,
            uptimeSeconds: Double((NIODeadline.now() - gateway.startedAt).nanoseconds / 1_000_000) / 1000,
            eventLoops: gateway.contexts.ordered.count,
            clientConnections: snapshot.clientConnections,
            libraries: NativeLibraries.all,
            pools: runtime.pools.map { pool in
                Health.Pool(name: pool.name, role: pool.role.rawValue, region: pool.region, balancer: pool.balancer.rawValue,
                            servers: pool.servers.map(\.authority),
                            available: pool.servers.filter { routing.serverAvailable[$0.id] }.count)
            },
            lastReload: gateway.lastReload.withLockedValue { $0 })
        return .json(health, status: draining ? .serviceUnavailable : .ok)
    }

    /// `POST /admin/upstreams/POOL/HOST:PORT/maintenance` takes a server out of rotation (its
    /// requests in flight finish); `.../ready` puts it back.
    private func setServerState(_ path: String) -> AdminResponse {
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count == 5, ["maintenance", "ready"].contains(parts[4]) else {
            return .error(.notFound, "use POST /admin/upstreams/POOL/HOST:PORT/maintenance or .../ready")
        }
        guard let server = gateway.runtime.servers.first(where: { $0.poolName == parts[2] && $0.authority == parts[3] }) else {
            return .error(.notFound, "no server \(parts[3]) in pool \(parts[2])")
        }
        gateway.routing.setMaintenance(server: server, parts[4] == "maintenance")
        gateway.logger.notice("server state changed", metadata: ["pool": "\(server.poolName)", "server": "\(server.authority)", "state": "\(parts[4])"])
        return .json(["pool": server.poolName, "server": server.authority, "state": parts[4]])
    }

    /// `POST /admin/reload`: the configuration file is read again; the reply says how it went
    /// (422 with the file, line and key when it is invalid: the old configuration runs on).
    private func reload() async -> AdminResponse {
        guard let path = gateway.configPath else {
            return .error(.conflict, "this gateway was not started from a configuration file")
        }
        let report = await gateway.reload(from: path)
        return .json(report, status: report.succeeded ? .ok : .unprocessableEntity)
    }

    private func upstreams() async -> AdminResponse {
        let view = await self.view()
        let snapshot = view.snapshot, routing = view.routing, inputs = view.inputs, generation = view.generation
        let checks = generation.healthChecker.current
        let now = NIODeadline.now()
        let checked = generation.config.health.path != nil
        let list = generation.runtime.servers.map { server in
            let stats = snapshot.upstreams[server.id]
            let check = checks[server.id]
            return Upstream(
                pool: server.poolName, server: server.authority, weight: server.weight,
                state: inputs.maintenance.contains(server.id) ? "maintenance" : "ready",
                available: routing.serverAvailable[server.id],
                connectionsOpen: stats.open, connectionsIdle: stats.idle, requestsWaiting: stats.waiting,
                connectionsOpenedTotal: stats.opened, connectFailuresTotal: stats.connectFailures,
                health: !checked ? "unchecked" : (check.state.isUp ? "up" : "down"),
                lastCheck: check.lastProbe.map { probe in
                    Upstream.Check(secondsAgo: Double((now - probe).nanoseconds / 1_000_000) / 1000,
                                   milliseconds: check.lastMilliseconds, status: check.lastStatus, error: check.lastError)
                },
                ejected: stats.ejectedOnLoops > 0, ejections: stats.ejections, requestsInFlight: stats.inFlight)
        }
        let write = gateway.routing.writePool(inputs)
        return .json(Upstreams(
            upstreams: list, databases: databaseReport(generation),
            writePool: routing.writePool.map { generation.runtime.pools[$0].name },
            writeProblem: write.problem.map { problem in
                switch problem {
                case .noPrimary: "no database is primary"
                case .splitBrain(let databases):
                    "split brain: \(databases.map { generation.config.databases[$0].name }.joined(separator: " and ")) both claim to be primary"
                }
            }))
    }

    private func databaseReport(_ generation: GatewayServer.Generation) -> [Database] {
        generation.databaseMonitor.current.map { status in
            Database(
                name: status.name, reachable: status.reachable,
                role: status.observation.map { $0.inRecovery ? "replica" : "primary" } ?? "unknown",
                lsn: status.observation?.lsn?.description, lagBytes: status.lag?.bytes, lagSeconds: status.lag?.seconds,
                freshness: status.freshness.state.rawValue, replayPaused: status.observation?.replayPaused,
                connections: status.observation?.connections, maxConnections: status.observation?.maxConnections,
                lastProbeMilliseconds: status.lastProbeMilliseconds, lastError: status.lastError,
                probes: status.probes, probeFailures: status.probeFailures)
        }
    }

    private func metrics() async -> AdminResponse {
        let view = await self.view()
        let snapshot = view.snapshot, routing = view.routing, runtime = view.generation.runtime
        let metrics = runtime.metrics
        metrics.setGauge("gateway_client_connections", [], Double(snapshot.clientConnections))
        metrics.setGauge("gateway_tunnels_open", [], Double(snapshot.tunnelsOpen))
        metrics.setGauge("gateway_http2_connections_open", [], Double(snapshot.http2Connections))
        metrics.setGauge("gateway_http2_streams_open", [], Double(snapshot.http2Streams))
        for server in runtime.servers {
            let stats = snapshot.upstreams[server.id]
            let labels = [("pool", server.poolName), ("server", server.authority)]
            metrics.setGauge("gateway_upstream_connections", labels + [("state", "open")], Double(stats.open))
            metrics.setGauge("gateway_upstream_connections", labels + [("state", "idle")], Double(stats.idle))
            metrics.setGauge("gateway_upstream_available", labels, routing.serverAvailable[server.id] ? 1 : 0)
            metrics.setGauge("gateway_upstream_ejected", labels, stats.ejectedOnLoops > 0 ? 1 : 0)
        }
        for slot in gateway.listenerSlots.withLockedValue({ $0 }) {
            for identity in slot.current.certificates?.material.identities ?? [] {
                metrics.setGauge("gateway_tls_certificate_expiry_timestamp_seconds",
                                 [("listener", slot.address.description), ("certificate", identity.names.first ?? "default")],
                                 Double(identity.notValidAfter))
            }
        }
        for (index, pool) in runtime.pools.enumerated() {
            metrics.setGauge("gateway_pool_fresh", [("pool", pool.name)], routing.poolFresh[index] ? 1 : 0)
            metrics.setGauge("gateway_pool_takes_writes", [("pool", pool.name)], routing.writePool == index ? 1 : 0)
        }
        for database in databaseReport(view.generation) {
            let labels = [("database", database.name)]
            metrics.setGauge("gateway_database_reachable", labels, database.reachable ? 1 : 0)
            metrics.setGauge("gateway_database_in_recovery", labels, database.role == "replica" ? 1 : 0)
            metrics.setGauge("gateway_database_replay_lag_bytes", labels, Double(database.lagBytes ?? 0))
            metrics.setGauge("gateway_database_replay_lag_seconds", labels, database.lagSeconds ?? 0)
            metrics.setGauge("gateway_database_fresh", labels, database.freshness == "fresh" ? 1 : 0)
            if let connections = database.connections, let max = database.maxConnections {
                metrics.setGauge("gateway_database_connections", labels, Double(connections))
                metrics.setGauge("gateway_database_max_connections", labels, Double(max))
            }
        }
        // Pools first, then requests no pool answered and cache answers; slots of pools a
        // reload removed are still reported (their counters must not go back).
        let slots = runtime.statsSlots
        let perLoop = await gateway.contexts.collect { $0.requestStats }
        let order = Array(2..<slots.count) + [GatewayRuntime.unroutedStatsSlot, GatewayRuntime.cacheStatsSlot]
        let stats = order.map { slot in
            (pool: slots[slot], stats: perLoop.reduce(RequestStats()) { $0 + ($1.indices.contains(slot) ? $1[slot] : RequestStats()) })
        }
        var body = metrics.render(requestStats: stats)
        if let cache = runtime.cache {
            let cacheStats = await gateway.contexts.collect { $0.cacheStats }.reduce(CacheStats(), +)
            body += Array(CacheStats.render(cacheStats, local: cache.store.local?.totals,
                                            counters: cache.store.usesRedis ? cache.store.counters : nil).utf8)
        }
        if let limits = runtime.rateLimits {
            let perLoop = await gateway.contexts.collect { $0.rateLimits.stats }
            let totals = limits.policies.map { policy in
                perLoop.reduce(RateLimitStats()) { $0 + ($1.indices.contains(policy.index) ? $1[policy.index] : RateLimitStats()) }
            }
            body += Array(RateLimitStats.render(totals, policies: limits.policies.map(\.name), keys: limits.local.count).utf8)
        }
        if let auth = runtime.auth {
            let perLoop = await gateway.contexts.collect { ($0.auth.stats, $0.auth.cachedTokens) }
            body += Array(AuthStats.render(perLoop.map(\.0).reduce(AuthStats(), +), jwks: auth.jwksSources,
                                           cachedTokens: perLoop.map(\.1).reduce(0, +)).utf8)
        }
        if let redis = await runtime.redis?.stats() {
            body += Array(RedisStats.render(redis).utf8)
        }
        body += Array("""
            # TYPE gateway_requests_by_protocol_total counter
            gateway_requests_by_protocol_total{protocol="http/1.1"} \(snapshot.http1Requests)
            gateway_requests_by_protocol_total{protocol="h2"} \(snapshot.http2Requests)

            """.utf8)
        if let accessLog = runtime.accessLog {
            body += Array("""
                # TYPE gateway_access_log_dropped_lines_total counter
                gateway_access_log_dropped_lines_total \(accessLog.droppedLines)

                """.utf8)
        }
        if let process = ProcessMetrics.sample() {
            body += Array(ProcessMetrics.render(process, eventLoops: gateway.contexts.ordered.count).utf8)
        }
        return AdminResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: MetricHelp.annotate(body))
    }
}
