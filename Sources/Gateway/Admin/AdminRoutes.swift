import NIOCore
import NIOHTTP1

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

        struct Pool: Encodable {
            var name: String
            var role: String
            var region: String?
            var servers: [String]
        }
    }

    struct Upstream: Encodable {
        var pool: String
        var server: String
        var weight: Int
        var connectionsOpen: Int
        var connectionsIdle: Int
        var requestsWaiting: Int
        var connectionsOpenedTotal: Int
        var connectFailuresTotal: Int
    }

    func respond(to head: HTTPRequestHead) async -> AdminResponse {
        if let token = gateway.config.adminToken, !token.isEmpty {
            guard head.headers.first(name: "authorization") == "Bearer \(token)" else {
                return .error(.unauthorized, "a bearer token is required (Authorization: Bearer ...)")
            }
        }
        guard head.method == .GET || head.method == .HEAD else {
            return .error(.methodNotAllowed, "only GET")
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/health":
            return await health()
        case "/metrics":
            return await metrics()
        case "/admin/upstreams":
            return await upstreams()
        default:
            return .error(.notFound, "unknown endpoint; try /health, /metrics, /admin/upstreams")
        }
    }

    private func health() async -> AdminResponse {
        let snapshot = await gateway.snapshot()
        let runtime = gateway.runtime
        let draining = gateway.isDraining
        let health = Health(
            status: draining ? "draining" : "ok",
            version: GatewayServer.version,
            uptimeSeconds: Double((NIODeadline.now() - gateway.startedAt).nanoseconds / 1_000_000) / 1000,
            eventLoops: gateway.contexts.ordered.count,
            clientConnections: snapshot.clientConnections,
            libraries: NativeLibraries.all,
            pools: runtime.pools.map { pool in
                Health.Pool(name: pool.name, role: pool.role.rawValue, region: pool.region,
                            servers: pool.servers.map(\.authority))
            })
        return .json(health, status: draining ? .serviceUnavailable : .ok)
    }

    private func upstreams() async -> AdminResponse {
        let snapshot = await gateway.snapshot()
        let list = gateway.runtime.servers.map { server in
            let stats = snapshot.upstreams[server.id]
            return Upstream(
                pool: server.poolName, server: server.authority, weight: server.weight,
                connectionsOpen: stats.open, connectionsIdle: stats.idle, requestsWaiting: stats.waiting,
                connectionsOpenedTotal: stats.opened, connectFailuresTotal: stats.connectFailures)
        }
        return .json(["upstreams": list])
    }

    private func metrics() async -> AdminResponse {
        let snapshot = await gateway.snapshot()
        let metrics = gateway.runtime.metrics
        metrics.setGauge("gateway_client_connections", [], Double(snapshot.clientConnections))
        for server in gateway.runtime.servers {
            let stats = snapshot.upstreams[server.id]
            let labels = [("pool", server.poolName), ("server", server.authority)]
            metrics.setGauge("gateway_upstream_connections", labels + [("state", "open")], Double(stats.open))
            metrics.setGauge("gateway_upstream_connections", labels + [("state", "idle")], Double(stats.idle))
        }
        let pools = gateway.runtime.pools.map(\.name) + ["-"]
        let perLoop = await gateway.contexts.collect { $0.requestStats }
        let stats = pools.indices.map { index in
            (pool: pools[index], stats: perLoop.reduce(RequestStats()) { $0 + $1[index] })
        }
        return AdminResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                             body: metrics.render(requestStats: stats))
    }
}
