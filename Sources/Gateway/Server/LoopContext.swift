import Cache
import HTTPWire
import NIOCore
import Redis
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
    /// Failed upstream TLS handshakes are logged once per server per 10 s on this loop.
    var upstreamTLSWarnings = WarningThrottle(interval: .seconds(10))
    /// Per pool (by index), then one slot for requests refused before routing, then one for
    /// responses served from the cache.
    var requestStats: [RequestStats]
    var cacheStats = CacheStats()
    /// Upgraded connections (WebSocket tunnels) open on this loop.
    var tunnelsOpen = 0
    var rateLimits: RateLimitLoopState
    /// This loop's Redis connection (nil without `redis:`).
    let redis: RedisLoopClient?
    /// This loop's access log lines (nil with `access_log: false`).
    let accessLog: AccessLogBuffer?
    /// This loop's balancing state (requests in flight per server, round-robin weights).
    var balancer: BalancerState
    /// What the control plane says may serve (health, maintenance, databases).
    var publishedRoutingState: RoutingState {
        didSet { refreshRoutingState() }
    }
    /// The state the Router reads: the published one minus this loop's outlier ejections.
    private(set) var routingState: RoutingState
    /// Passive outlier detection on this loop's own requests.
    var outliers: OutlierDetector
    var retryBudget: RetryBudget
    /// Read-your-writes queries (set at start when databases are configured).
    var consistencyQueries: ConsistencyQueries?
    /// Replay positions this loop saw while reads waited, fresher than the published ones.
    private var observedReplay: [LSN?]
    private(set) var draining = false
    /// Client connections on this loop (for drain and the connection gauge).
    private(set) var clientConnections: [ObjectIdentifier: HTTP1Connection] = [:]
    /// HTTP/2 connections on this loop; each of their streams is also in `clientConnections`.
    private(set) var http2Connections: [ObjectIdentifier: HTTP2Connection] = [:]
    /// How many of `clientConnections` are HTTP/2 streams (counted when asked: scrapes and drain).
    var http2Streams: Int { clientConnections.values.count { $0.stream != nil } }
    /// Requests answered on this loop over HTTP/1.x and over HTTP/2.
    var requestsByProtocol = (http1: 0, http2: 0)
    /// Client connections as a client counts them: HTTP/1.x connections and HTTP/2 connections
    /// (not their streams).
    var clientConnectionCount: Int { clientConnections.count - http2Streams + http2Connections.count }

    init(eventLoop: EventLoop, runtime: GatewayRuntime, connector: UpstreamConnector, loopCount: Int) {
        self.eventLoop = eventLoop
        self.runtime = runtime
        let maxHead = runtime.config.limits.maxResponseHeadBytes
        pools = runtime.servers.map { server in
            UpstreamConnectionPool(
                server: server, eventLoop: eventLoop, connector: connector,
                maxConnections: (server.settings.maxConnections + loopCount - 1) / loopCount,
                maxHeadBytes: maxHead)
        }
        balancer = BalancerState(servers: runtime.servers.count)
        let initial = RoutingState.allUp(servers: runtime.servers.count, pools: runtime.pools.count,
                                         writePool: runtime.router.configuredWritePool)
        publishedRoutingState = initial
        routingState = initial
        observedReplay = Array(repeating: nil, count: runtime.pools.count)
        let outlier = runtime.config.outlierDetection
        outliers = OutlierDetector(
            settings: .init(consecutiveErrors: outlier.consecutiveErrors, baseEjectionNanoseconds: outlier.baseEjectionTime.nanoseconds,
                            maxEjectionNanoseconds: outlier.maxEjectionTime.nanoseconds, maxEjectedPercent: outlier.maxEjectedPercent),
            poolOfServer: runtime.servers.map { server in runtime.pools.firstIndex { $0.name == server.poolName }! },
            serversOfPool: runtime.pools.map { $0.servers.map(\.id) })
        retryBudget = RetryBudget(percent: runtime.config.retries.budgetPercent, minimumPerSecond: runtime.config.retries.minPerSecond)
        requestStats = Array(repeating: RequestStats(), count: runtime.pools.count + 2)
        rateLimits = RateLimitLoopState(policies: runtime.rateLimits?.policies.count ?? 0)
        redis = runtime.redis?.client(on: eventLoop)
        accessLog = runtime.accessLog.map { AccessLogBuffer(output: $0, eventLoop: eventLoop) }
    }

    func start() {
        sweeper.onTick = { [unowned self] now in
            for pool in self.pools {
                pool.closeIdle(now: now)
            }
            self.trimHeapAfterManyCloses()
            let returned = self.outliers.expire(now: Int64(now.uptimeNanoseconds))
            if !returned.isEmpty {
                self.refreshRoutingState()
                for server in returned {
                    self.runtime.logger.info("outlier ejection ended", metadata: [
                        "pool": "\(self.runtime.servers[server].poolName)", "server": "\(self.runtime.servers[server].authority)"])
                }
            }
        }
        sweeper.start(on: eventLoop, interval: .milliseconds(100))
    }

    func register(_ handler: HTTP1Connection) {
        clientConnections[ObjectIdentifier(handler)] = handler
        sweeper.add(handler)
    }

    func unregister(_ handler: HTTP1Connection) {
        guard clientConnections.removeValue(forKey: ObjectIdentifier(handler)) != nil else { return }
        sweeper.remove(handler)
        closedSinceTrim += 1
    }

    func countRequest(http2: Bool) {
        if http2 { requestsByProtocol.http2 += 1 } else { requestsByProtocol.http1 += 1 }
    }

    func register(_ connection: HTTP2Connection) {
        http2Connections[ObjectIdentifier(connection)] = connection
        sweeper.add(connection)
    }

    func unregister(_ connection: HTTP2Connection) {
        guard http2Connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        sweeper.remove(connection)
    }

    /// Client connections closed, or idle ones that gave their buffers back, since the heap
    /// was last trimmed.
    private var closedSinceTrim = 0

    /// An idle connection released its buffers (see `HTTP1Connection.swept`).
    func idleBuffersReleased() {
        closedSinceTrim += 1
    }

    /// After a crowd of clients left or went idle, give the memory they used back to the
    /// system: malloc keeps freed pages otherwise, and RSS would stay at its peak. On a
    /// background thread, at most once per tick, and only after a thousand or so.
    private func trimHeapAfterManyCloses() {
        guard closedSinceTrim >= 1024 else { return }
        closedSinceTrim = 0
        HeapTrimmer.trimSoon()
    }

    /// Shutdown, step one: idle clients are closed now, busy ones after their current response.
    func beginDrain() {
        draining = true
        for handler in clientConnections.values { handler.drain() }
        for connection in http2Connections.values { connection.drain() }
    }

    /// Shutdown, last step: whatever is still open is closed.
    func closeEverything() {
        for handler in clientConnections.values { handler.forceClose() }
        for connection in http2Connections.values { connection.forceClose() }
        for pool in pools { pool.close() }
        sweeper.stop()
        accessLog?.flush()
    }

    func connectionPool(for server: UpstreamServer) -> UpstreamConnectionPool {
        pools[server.id]
    }

    private func refreshRoutingState() {
        var state = publishedRoutingState
        for server in state.serverAvailable.indices where outliers.isUnavailable(server) {
            state.serverAvailable[server] = false
        }
        for pool in state.replayLSN.indices {
            if let seen = observedReplay[pool], state.replayLSN[pool].map({ $0 < seen }) ?? true {
                state.replayLSN[pool] = seen
            } else {
                observedReplay[pool] = nil  // the published position caught up
            }
        }
        routingState = state
    }

    /// A replica database was seen at `lsn` (a read waited for it): its pools can serve reads
    /// needing that position at once, before the next published state says so.
    func noteReplay(database: Int, lsn: LSN) {
        for pool in runtime.pools.indices where runtime.poolDatabase[pool] == database {
            if observedReplay[pool].map({ $0 < lsn }) ?? true { observedReplay[pool] = lsn }
        }
        refreshRoutingState()
    }

    /// An exchange's outcome for passive outlier detection: 5xx answers and connection failures
    /// count against the server, anything else clears its streak. A failed connect also makes
    /// this loop skip the server for a short backoff.
    func recordOutcome(server: Int, failed: Bool, connectFailure: Bool = false, now: NIODeadline) {
        guard failed else {
            outliers.recordSuccess(server)
            return
        }
        let clock = Int64(now.uptimeNanoseconds)
        if connectFailure {
            let ejected = outliers.recordConnectFailure(server, now: clock)
            refreshRoutingState()
            if !ejected { return }
        } else if !outliers.recordFailure(server, now: clock) {
            return
        }
        refreshRoutingState()
        let upstream = runtime.servers[server]
        runtime.logger.warning("outlier ejected", metadata: [
            "pool": "\(upstream.poolName)", "server": "\(upstream.authority)",
            "times": "\(outliers.timesEjected[server])",
            "until_ms": "\((outliers.ejectedUntil[server]! - clock) / 1_000_000)"])
        runtime.metrics.countEvent("gateway_outlier_ejections_total", [("pool", upstream.poolName), ("server", upstream.authority)])
    }
}
