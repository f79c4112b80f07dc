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
    /// The configuration this loop serves new requests with (a reload replaces it).
    private(set) var current: LoopGeneration
    var runtime: GatewayRuntime { current.runtime }
    private let connector: UpstreamConnector
    private let loopCount: Int
    /// Pools of servers a reload removed or changed, until their last connection closes.
    private var retiredPools: [UpstreamConnectionPool] = []
    let sweeper = DeadlineSweeper()
    var dateCache = HTTPDateCache()
    var requestIDs = RequestIDGenerator()
    /// Failed upstream TLS handshakes are logged once per server per 10 s on this loop.
    var upstreamTLSWarnings = WarningThrottle(interval: .seconds(10))
    /// By `GatewayRuntime.statsSlot` of a pool: one slot for requests refused before routing,
    /// one for responses served from the cache, then one per pool name ever configured (slots
    /// outlive reloads, so counters never go back).
    var requestStats: [RequestStats]
    var cacheStats = CacheStats()
    /// Upgraded connections (WebSocket tunnels) open on this loop.
    var tunnelsOpen = 0
    /// By the stable slot of each policy (`RateLimitRuntime.Policy.index`).
    var rateLimits: RateLimitLoopState
    /// Verified tokens and auth counters.
    var auth = AuthLoopState()
    /// This loop's access log lines (nil with `access_log: false`).
    private(set) var accessLog: AccessLogBuffer?
    private let accessLogBuffer: AccessLogBuffer?
    private(set) var draining = false
    /// While draining after a binary upgrade: how long an idle connection may still send one
    /// more request (also for connections accepted just before the listener closed).
    private(set) var drainIdleGrace: TimeAmount?
    /// Client connections on this loop (for drain and the connection gauge).
    private(set) var clientConnections: [ObjectIdentifier: HTTP1Connection] = [:]
    /// HTTP/2 connections on this loop.
    private(set) var http2Connections: [ObjectIdentifier: HTTP2Connection] = [:]
    /// HTTP/2 streams open on this loop (counted when asked: scrapes).
    var http2Streams: Int { http2Connections.values.reduce(0) { $0 + $1.streams.count } }
    /// Requests answered on this loop over HTTP/1.x and over HTTP/2.
    var requestsByProtocol = (http1: 0, http2: 0)
    /// Client connections as a client counts them: HTTP/1.x connections and HTTP/2 connections
    /// (not their streams).
    var clientConnectionCount: Int { clientConnections.count + http2Connections.count }

    init(eventLoop: EventLoop, runtime: GatewayRuntime, connector: UpstreamConnector, loopCount: Int) {
        self.eventLoop = eventLoop
        self.connector = connector
        self.loopCount = loopCount
        current = LoopGeneration(
            runtime: runtime, eventLoop: eventLoop, connector: connector, loopCount: loopCount,
            routingState: .allUp(servers: runtime.servers.count, pools: runtime.pools.count, writePool: runtime.router.configuredWritePool),
            consistencyQueries: nil, previous: nil)
        requestStats = Array(repeating: RequestStats(), count: runtime.statsSlots.count)
        rateLimits = RateLimitLoopState(policies: runtime.rateLimits?.slotCount ?? 0)
        accessLogBuffer = runtime.accessLogOutput.map { AccessLogBuffer(output: $0, eventLoop: eventLoop) }
        accessLog = runtime.accessLog == nil ? nil : accessLogBuffer
    }

    /// A reload: new requests get `runtime`; exchanges in flight keep the generation they
    /// started with. Pools of servers it kept carry over; the others retire.
    func adopt(_ runtime: GatewayRuntime, routingState: RoutingState, consistencyQueries: ConsistencyQueries?) {
        current = LoopGeneration(
            runtime: runtime, eventLoop: eventLoop, connector: connector, loopCount: loopCount,
            routingState: routingState, consistencyQueries: consistencyQueries, previous: current,
            retire: { pool in
                pool.retire()
                self.retiredPools.append(pool)
            })
        if requestStats.count < runtime.statsSlots.count {
            requestStats += Array(repeating: RequestStats(), count: runtime.statsSlots.count - requestStats.count)
        }
        rateLimits.grow(to: runtime.rateLimits?.slotCount ?? 0)
        accessLog = runtime.accessLog == nil ? nil : accessLogBuffer
    }

    /// The other loops (set once they all exist): an outlier ejection decided here reaches them.
    weak var peers: LoopContexts?

    /// Tells the other loops what this one decided about a server of `runtime`; a loop that
    /// runs another configuration by then ignores it (its server numbers differ).
    func shareOutlier(_ news: LoopGeneration.OutlierNews, of runtime: GatewayRuntime) {
        guard let peers else { return }
        let me = ObjectIdentifier(eventLoop)
        for box in peers.ordered where ObjectIdentifier(box.eventLoop) != me {
            box.eventLoop.execute {
                let generation = box.value.current
                if generation.runtime === runtime { generation.adoptOutlier(news) }
            }
        }
    }

    /// The control plane's latest view, if it is about the configuration this loop runs.
    func publish(_ state: RoutingState, for runtime: GatewayRuntime) {
        guard runtime === current.runtime else { return }
        current.publishedRoutingState = state
    }

    func start() {
        sweeper.onTick = { [unowned self] now in
            for pool in self.current.pools {
                pool.closeIdle(now: now)
            }
            if !self.retiredPools.isEmpty { self.retiredPools.removeAll { $0.isFinished } }
            self.trimHeapAfterManyCloses()
            self.current.expireOutliers(now: now)
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

    /// Shutdown, step one: idle clients are closed now (or after `idleGrace`), busy ones after
    /// their current response.
    func beginDrain(idleGrace: TimeAmount? = nil) {
        draining = true
        drainIdleGrace = idleGrace
        for handler in clientConnections.values { handler.drain(idleGrace: idleGrace) }
        for connection in http2Connections.values { connection.drain() }
    }

    /// Shutdown, last step: whatever is still open is closed.
    func closeEverything() {
        for handler in clientConnections.values { handler.forceClose() }
        for connection in http2Connections.values { connection.forceClose() }
        for pool in current.pools + retiredPools { pool.close() }
        sweeper.stop()
        accessLogBuffer?.flush()
    }
}
