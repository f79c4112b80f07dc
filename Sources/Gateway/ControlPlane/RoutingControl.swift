import Logging
import NIOConcurrencyHelpers
import Router

/// The control plane's view of what may serve, and the one writer of `RoutingState`.
/// Operators (maintenance), active health checks and database probes change its inputs; every
/// change publishes a fresh state to each event loop, which reads its own copy without locks.
final class RoutingControl: Sendable {
    struct DatabaseInput: Sendable, Equatable {
        var probed: Bool
        var observation: WriteTargetElection.Observation
        var freshness: ReplicaFreshness.State
        /// A replica's replayed WAL position.
        var replayLSN: LSN?
        /// The position it had reached at the last probe (primary or replica), if reachable.
        var position: LSN? = nil
    }

    struct Inputs: Sendable {
        /// Servers an operator took out of rotation.
        var maintenance: Set<Int> = []
        /// Servers failing their active health check.
        var healthDown: Set<Int> = []
        /// Per database, once probed.
        var databases: [DatabaseInput] = []
    }

    private let inputs = NIOLockedValueBox(Inputs())
    private let published = NIOLockedValueBox<RoutingState?>(nil)
    /// The configuration whose server and pool numbers the inputs use (a reload replaces it).
    private let topology: NIOLockedValueBox<GatewayRuntime>
    private var runtime: GatewayRuntime { topology.withLockedValue { $0 } }
    private var router: Router { runtime.router }
    private let contexts: LoopContexts
    private let metrics: GatewayMetrics
    private let logger: Logger

    init(runtime: GatewayRuntime, contexts: LoopContexts, metrics: GatewayMetrics, logger: Logger) {
        topology = NIOLockedValueBox(runtime)
        self.contexts = contexts
        self.metrics = metrics
        self.logger = logger
    }

    var current: Inputs { inputs.withLockedValue { $0 } }

    /// A reload: the servers it kept keep their maintenance and health marks under their new
    /// numbers; the others' marks go. Database observations stay when `databases:` is the same.
    func reconfigure(to runtime: GatewayRuntime, from previous: GatewayRuntime, databasesUnchanged: Bool) {
        let carried = runtime.carriedServers(from: previous) ?? []
        var newID: [Int: Int] = [:]
        for (new, old) in carried.enumerated() { if let old { newID[old] = new } }
        topology.withLockedValue { topology in
            inputs.withLockedValue { inputs in
                inputs.maintenance = Set(inputs.maintenance.compactMap { newID[$0] })
                inputs.healthDown = Set(inputs.healthDown.compactMap { newID[$0] })
                if !databasesUnchanged { inputs.databases = [] }
            }
            published.withLockedValue { $0 = nil }
            topology = runtime
        }
    }

    func setMaintenance(server: UpstreamServer, _ on: Bool) {
        guard isCurrent(server) else { return }
        inputs.withLockedValue { inputs in
            if on { inputs.maintenance.insert(server.id) } else { inputs.maintenance.remove(server.id) }
        }
        publish()
    }

    /// From a health check; ignored when it checked a server of a configuration a reload
    /// has since replaced (its number may be another server's now).
    func setHealth(server: UpstreamServer, up: Bool) {
        guard isCurrent(server) else { return }
        inputs.withLockedValue { inputs in
            if up { inputs.healthDown.remove(server.id) } else { inputs.healthDown.insert(server.id) }
        }
        publish()
    }

    private func isCurrent(_ server: UpstreamServer) -> Bool {
        let servers = runtime.servers
        return server.id < servers.count && servers[server.id] === server
    }

    func updateDatabases(_ databases: [DatabaseInput]) {
        let changed = inputs.withLockedValue { inputs -> Bool in
            defer { inputs.databases = databases }
            return inputs.databases != databases
        }
        if changed { publish() }
    }

    /// Why writes currently have nowhere to go, if they don't.
    enum WriteProblem: Sendable, Equatable {
        case noPrimary
        case splitBrain([Int])
    }

    /// The write pool the databases imply: the pool of the one database out of recovery (a
    /// promoted replica's pool after a failover). Before any database has been probed, and
    /// without `databases:`, the configured primary pool.
    func writePool(_ inputs: Inputs) -> (pool: Int?, problem: WriteProblem?) {
        writePool(inputs, runtime: runtime)
    }

    private func writePool(_ inputs: Inputs, runtime: GatewayRuntime) -> (pool: Int?, problem: WriteProblem?) {
        let router = runtime.router, poolDatabase = runtime.poolDatabase
        guard poolDatabase.contains(where: { $0 != nil }), !inputs.databases.isEmpty,
              inputs.databases.allSatisfy(\.probed)
        else { return (router.configuredWritePool, nil) }
        switch WriteTargetElection.elect(inputs.databases.map(\.observation)) {
        case .primary(let database):
            let pools = poolDatabase.indices.filter { poolDatabase[$0] == database }
            let pool = pools.first { router.pools[$0].role == .primary } ?? pools.first
            return (pool, pool == nil ? .noPrimary : nil)
        case .none:
            return (nil, .noPrimary)
        case .splitBrain(let databases):
            return (nil, .splitBrain(databases))
        }
    }

    /// The routing state the inputs imply.
    func state() -> RoutingState { snapshot().state }

    /// The state, with the configuration whose numbers it uses: read together, so a reload
    /// cannot come between.
    func snapshot() -> (state: RoutingState, runtime: GatewayRuntime, inputs: Inputs) {
        let (inputs, runtime) = topology.withLockedValue { runtime in (self.inputs.withLockedValue { $0 }, runtime) }
        let router = runtime.router, poolDatabase = runtime.poolDatabase
        let write = writePool(inputs, runtime: runtime)
        var state = RoutingState.allUp(servers: runtime.servers.count, pools: router.pools.count, writePool: write.pool)
        for server in inputs.maintenance.union(inputs.healthDown) { state.serverAvailable[server] = false }
        for pool in router.pools.indices {
            if let database = poolDatabase[pool], database < inputs.databases.count {
                state.positionLSN[pool] = inputs.databases[database].position
            }
            guard router.pools[pool].role == .replica, let database = poolDatabase[pool], database < inputs.databases.count else { continue }
            // A replica pool reads only while its database is known to be fresh enough; the
            // pool taking writes (a promoted replica's) is the primary and always fresh.
            state.poolFresh[pool] = pool == write.pool || inputs.databases[database].freshness == .fresh
            state.replayLSN[pool] = inputs.databases[database].replayLSN
        }
        return (state, runtime, inputs)
    }

    func publish() {
        let (state, runtime, _) = snapshot()
        let router = runtime.router
        let previous = published.withLockedValue { published -> RoutingState? in
            defer { published = state }
            return published
        }
        guard previous != state else { return }
        if let previous, previous.writePool != state.writePool {
            let from = previous.writePool.map { router.pools[$0].name } ?? "none"
            let to = state.writePool.map { router.pools[$0].name } ?? "none"
            let problem = writePool(current).problem
            logger.warning("write pool changed", metadata: [
                "from": "\(from)", "to": "\(to)",
                "reason": "\(problem.map { "\($0)" } ?? "a database became primary")",
            ])
            metrics.countEvent("gateway_write_pool_changes_total", [("to", to)])
        }
        if let previous {
            for pool in router.pools.indices where previous.poolFresh[pool] != state.poolFresh[pool] {
                logger.notice("pool freshness changed", metadata: ["pool": "\(router.pools[pool].name)", "fresh": "\(state.poolFresh[pool])"])
                metrics.countEvent("gateway_pool_freshness_changes_total", [("pool", router.pools[pool].name), ("fresh", "\(state.poolFresh[pool])")])
            }
        }
        contexts.forEach { $0.publish(state, for: runtime) }
    }
}
