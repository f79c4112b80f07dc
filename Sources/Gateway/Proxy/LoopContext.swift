import NIOCore
import Router

/// The state one event loop owns: its connection pools to every upstream server, its timer
/// sweeper, its Date header and request-ID generator. Only that loop's thread touches it, which
/// is why the data path needs no locks.
final class LoopContext {
    let eventLoop: EventLoop
    let runtime: GatewayRuntime
    /// Indexed by `UpstreamServer.id`.
    let pools: [UpstreamConnectionPool]
    let sweeper = DeadlineSweeper()
    var dateCache = HTTPDateCache()
    var requestIDs = RequestIDGenerator()
    /// Per pool (by index), then one slot for requests refused before routing.
    var requestStats: [RequestStats]
    /// This loop's balancing state (requests in flight per server, round-robin weights).
    var balancer: BalancerState
    /// This loop's copy of which servers and pools may serve; replaced when health changes.
    var routingState: RoutingState
    private(set) var draining = false
    /// Client connections on this loop (for drain and the connection gauge).
    private(set) var clientConnections: [ObjectIdentifier: DownstreamHandler] = [:]

    init(eventLoop: EventLoop, runtime: GatewayRuntime, connector: UpstreamConnector, loopCount: Int) {
        self.eventLoop = eventLoop
        self.runtime = runtime
        let maxHead = runtime.config.limits.maxHeaderSize.bytes * 2
        pools = runtime.servers.map { server in
            UpstreamConnectionPool(
                server: server, eventLoop: eventLoop, connector: connector,
                maxConnections: (server.settings.maxConnections + loopCount - 1) / loopCount,
                maxHeadBytes: max(maxHead, 64 * 1024))
        }
        balancer = BalancerState(servers: runtime.servers.count)
        routingState = .allUp(servers: runtime.servers.count, pools: runtime.pools.count,
                              writePool: runtime.router.configuredWritePool)
        requestStats = Array(repeating: RequestStats(), count: runtime.pools.count + 1)
    }

    func start() {
        sweeper.onTick = { [unowned self] now in
            for pool in self.pools {
                pool.closeIdle(before: now - pool.server.settings.idleTimeout.timeAmount)
            }
        }
        sweeper.start(on: eventLoop, interval: .milliseconds(100))
    }

    func register(_ handler: DownstreamHandler) {
        clientConnections[ObjectIdentifier(handler)] = handler
        sweeper.add(handler)
    }

    func unregister(_ handler: DownstreamHandler) {
        clientConnections.removeValue(forKey: ObjectIdentifier(handler))
        sweeper.remove(handler)
    }

    /// Shutdown, step one: idle clients are closed now, busy ones after their current response.
    func beginDrain() {
        draining = true
        for handler in clientConnections.values { handler.drain() }
    }

    /// Shutdown, last step: whatever is still open is closed.
    func closeEverything() {
        for handler in clientConnections.values { handler.forceClose() }
        for pool in pools { pool.close() }
        sweeper.stop()
    }

    func connectionPool(for server: UpstreamServer) -> UpstreamConnectionPool {
        pools[server.id]
    }
}
