import NIOCore
import Redis
import Router

/// One configuration as one event loop runs it: the compiled runtime, this loop's connection
/// pools to its servers, and the routing state indexed by its server and pool numbers.
///
/// A reload gives each loop a new generation (`LoopContext.adopt`); an exchange keeps the one it
/// started with, so a request in flight finishes on the routes, pools and policies it began
/// with, and its server numbers never index another configuration's arrays. Pools of servers
/// the reload kept are the same objects in both generations: their connections stay open.
final class LoopGeneration {
    let runtime: GatewayRuntime
    /// Indexed by `UpstreamServer.id` of `runtime`.
    let pools: [UpstreamConnectionPool]
    /// Requests in flight per server, round-robin weights.
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
    /// Read-your-writes queries (nil without databases; set when the gateway starts).
    var consistencyQueries: ConsistencyQueries?
    /// This loop's Redis connection (nil without `redis:`).
    let redis: RedisLoopClient?
    /// Replay positions this loop saw while reads waited, fresher than the published ones.
    private var observedReplay: [LSN?]

    /// - Parameters:
    ///   - previous: the generation this loop runs now; the servers the reload kept take over
    ///     its pools and outlier state.
    ///   - retire: given each of `previous`' pools that this generation does not keep.
    init(runtime: GatewayRuntime, eventLoop: EventLoop, connector: UpstreamConnector, loopCount: Int,
         routingState: RoutingState, consistencyQueries: ConsistencyQueries?, previous: LoopGeneration?,
         retire: (UpstreamConnectionPool) -> Void = { _ in }) {
        self.runtime = runtime
        let carried = previous.flatMap { runtime.carriedServers(from: $0.runtime) }
        let maxHead = runtime.config.limits.maxResponseHeadBytes
        var pools: [UpstreamConnectionPool] = []
        for server in runtime.servers {
            if let previous, let old = carried?[server.id] {
                pools.append(previous.pools[old])
            } else {
                pools.append(UpstreamConnectionPool(
                    server: server, eventLoop: eventLoop, connector: connector,
                    maxConnections: (server.settings.maxConnections + loopCount - 1) / loopCount,
                    maxHeadBytes: maxHead))
            }
        }
        self.pools = pools
        if let previous {
            let kept = Set(pools.map(ObjectIdentifier.init))
            for pool in previous.pools where !kept.contains(ObjectIdentifier(pool)) { retire(pool) }
        }
        balancer = BalancerState(servers: runtime.servers.count)
        publishedRoutingState = routingState
        self.routingState = routingState
        observedReplay = Array(repeating: nil, count: runtime.pools.count)
        let outlier = runtime.config.outlierDetection
        outliers = OutlierDetector(
            settings: .init(consecutiveErrors: outlier.consecutiveErrors, baseEjectionNanoseconds: outlier.baseEjectionTime.nanoseconds,
                            maxEjectionNanoseconds: outlier.maxEjectionTime.nanoseconds, maxEjectedPercent: outlier.maxEjectedPercent),
            poolOfServer: runtime.servers.map { server in runtime.pools.firstIndex { $0.name == server.poolName }! },
            serversOfPool: runtime.pools.map { $0.servers.map(\.id) })
        if let previous, let carried {
            for (server, old) in carried.enumerated() {
                if let old { outliers.carry(server, from: previous.outliers, oldServer: old) }
            }
        }
        retryBudget = RetryBudget(percent: runtime.config.retries.budgetPercent, minimumPerSecond: runtime.config.retries.minPerSecond)
        self.consistencyQueries = consistencyQueries
        redis = runtime.redis?.client(on: eventLoop)
        refreshRoutingState()
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

    /// Ends the ejections and backoffs that are over; logs the servers that came back.
    func expireOutliers(now: NIODeadline) {
        let returned = outliers.expire(now: Int64(now.uptimeNanoseconds))
        guard !returned.isEmpty else { return }
        refreshRoutingState()
        for server in returned {
            runtime.logger.info("outlier ejection ended", metadata: [
                "pool": "\(runtime.servers[server].poolName)", "server": "\(runtime.servers[server].authority)"])
        }
    }

    /// What one loop decided about a server, for the other loops (`adoptOutlier`).
    struct OutlierNews: Sendable {
        var server: Int
        var ejectedUntil: Int64?
        var timesEjected: Int
        var backedOffUntil: Int64?
    }

    /// An exchange's outcome for passive outlier detection: 5xx answers and connection failures
    /// count against the server, anything else clears its streak. A failed connect also makes
    /// this loop skip the server for a short backoff. Returns what the other loops should learn
    /// (an ejection or a backoff), if anything.
    func recordOutcome(server: Int, failed: Bool, connectFailure: Bool = false, now: NIODeadline) -> OutlierNews? {
        let streaks = runtime.failureStreaks
        guard failed else {
            outliers.recordSuccess(server)
            streaks.reset(server)
            return nil
        }
        let clock = Int64(now.uptimeNanoseconds)
        let streak = streaks.failed(server)
        var news: OutlierNews { .init(server: server, ejectedUntil: outliers.ejectedUntil[server], timesEjected: outliers.timesEjected[server],
                                      backedOffUntil: outliers.backedOffUntil[server]) }
        if connectFailure {
            let ejected = outliers.recordConnectFailure(server, now: clock, streak: streak)
            refreshRoutingState()
            if !ejected { return news }
        } else if !outliers.recordFailure(server, now: clock, streak: streak) {
            return nil
        }
        streaks.reset(server)
        refreshRoutingState()
        let upstream = runtime.servers[server]
        runtime.logger.warning("outlier ejected", metadata: [
            "pool": "\(upstream.poolName)", "server": "\(upstream.authority)",
            "times": "\(outliers.timesEjected[server])",
            "until_ms": "\((outliers.ejectedUntil[server]! - clock) / 1_000_000)"])
        runtime.metrics.countEvent("gateway_outlier_ejections_total", [("pool", upstream.poolName), ("server", upstream.authority)])
        return news
    }

    /// Another loop ejected a server or backed off from it.
    func adoptOutlier(_ news: OutlierNews) {
        guard news.server < runtime.servers.count else { return }
        outliers.adopt(news.server, ejectedUntil: news.ejectedUntil, timesEjected: news.timesEjected, backedOffUntil: news.backedOffUntil)
        refreshRoutingState()
    }
}
