/// Counts of one server's connections on one event loop, summed over loops for the admin API.
struct UpstreamSnapshot: Sendable {
    var serverID: Int
    var open = 0
    var idle = 0
    var waiting = 0
    var opened = 0
    var connectFailures = 0
    /// Event loops on which the server is ejected now, and ejections over all loops.
    var ejectedOnLoops = 0
    var ejections = 0
    var inFlight = 0

    static func + (lhs: UpstreamSnapshot, rhs: UpstreamSnapshot) -> UpstreamSnapshot {
        UpstreamSnapshot(serverID: lhs.serverID, open: lhs.open + rhs.open, idle: lhs.idle + rhs.idle,
                         waiting: lhs.waiting + rhs.waiting, opened: lhs.opened + rhs.opened,
                         connectFailures: lhs.connectFailures + rhs.connectFailures,
                         ejectedOnLoops: lhs.ejectedOnLoops + rhs.ejectedOnLoops, ejections: lhs.ejections + rhs.ejections,
                         inFlight: lhs.inFlight + rhs.inFlight)
    }
}

/// What the admin endpoints report, gathered from every event loop.
struct GatewaySnapshot: Sendable {
    var clientConnections = 0
    var upstreams: [UpstreamSnapshot] = []
    /// Upgraded connections (WebSocket tunnels) open now.
    var tunnelsOpen = 0
    /// HTTP/2 connections and their streams open now.
    var http2Connections = 0
    var http2Streams = 0
    /// Requests answered since start, over HTTP/1.x and over HTTP/2.
    var http1Requests = 0
    var http2Requests = 0
}

extension GatewayServer {
    /// - Parameter runtime: the configuration whose server numbers the counts use; a loop that
    ///   runs another one (a reload is switching loops over) adds no server counts.
    func snapshot(of runtime: GatewayRuntime) async -> GatewaySnapshot {
        let perLoop = await contexts.collect { context -> GatewaySnapshot in
            let generation = context.current
            return GatewaySnapshot(
                clientConnections: context.clientConnectionCount,
                upstreams: generation.runtime !== runtime ? [] : generation.pools.enumerated().map { id, pool in
                    UpstreamSnapshot(serverID: id, open: pool.openCount, idle: pool.idleCount,
                                     waiting: pool.waitingCount, opened: pool.connectionsOpened,
                                     connectFailures: pool.connectFailures,
                                     ejectedOnLoops: generation.outliers.isEjected(id) ? 1 : 0,
                                     ejections: generation.outliers.timesEjected[id], inFlight: generation.balancer.inFlight[id])
                },
                tunnelsOpen: context.tunnelsOpen, http2Connections: context.http2Connections.count,
                http2Streams: context.http2Streams, http1Requests: context.requestsByProtocol.http1,
                http2Requests: context.requestsByProtocol.http2)
        }
        var total = GatewaySnapshot(upstreams: runtime.servers.map { UpstreamSnapshot(serverID: $0.id) })
        for loop in perLoop {
            total.clientConnections += loop.clientConnections
            total.tunnelsOpen += loop.tunnelsOpen
            total.http2Connections += loop.http2Connections
            total.http2Streams += loop.http2Streams
            total.http1Requests += loop.http1Requests
            total.http2Requests += loop.http2Requests
            for upstream in loop.upstreams {
                total.upstreams[upstream.serverID] = total.upstreams[upstream.serverID] + upstream
            }
        }
        return total
    }
}
