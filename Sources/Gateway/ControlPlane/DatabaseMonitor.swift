import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Router

/// The last known state of one database, for routing decisions and the admin API.
struct DatabaseStatus: Sendable {
    let name: String
    var reachable = false
    var everProbed = false
    var consecutiveFailures = 0
    var observation: DatabaseObservation?
    var lag: ReplicaLag?
    var freshness: ReplicaFreshness
    var lastProbe: NIODeadline?
    var lastProbeMilliseconds: Double?
    var lastError: String?
    var probes = 0
    var probeFailures = 0
}

/// Probes every database of `databases:` at `health.database_interval` through libpq, on a
/// thread pool, and turns what it sees into routing inputs: which database is primary (the
/// write pool follows it, through promotions), and whether each replica is fresh enough for
/// reads. Runs as structured concurrency beside the data path; never touches an event loop.
final class DatabaseMonitor: Sendable {
    private let names: [String]
    private let connections: [PostgresProbeConnection]
    private let settings: HealthConfig
    /// Probes, and the read-your-writes queries: three threads per database.
    let threadPool: NIOThreadPool
    private let state: NIOLockedValueBox<MonitorState>

    struct MonitorState: Sendable {
        var statuses: [DatabaseStatus]
        /// The current primary's WAL positions over time, and whose they are.
        var history = WALHistory()
        var historyOf: Int?
    }
    private let routing: RoutingControl
    private let metrics: GatewayMetrics
    private let logger: Logger

    init(databases: [(name: String, url: String)], settings: HealthConfig, routing: RoutingControl,
         metrics: GatewayMetrics, logger: Logger) {
        names = databases.map(\.name)
        connections = databases.map { PostgresProbeConnection(connectionString: $0.url) }
        self.settings = settings
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        threadPool = NIOThreadPool(numberOfThreads: max(1, databases.count * 3))
        let freshness = ReplicaFreshness(maxLagSeconds: settings.maxLag.seconds, maxLagBytes: settings.maxLagBytes.map { UInt64($0.bytes) })
        state = NIOLockedValueBox(MonitorState(statuses: databases.map { DatabaseStatus(name: $0.name, freshness: freshness) }))
    }

    var current: [DatabaseStatus] { state.withLockedValue { $0.statuses } }

    /// Probes until cancelled.
    func run() async {
        guard !names.isEmpty else { return }
        threadPool.start()
        await withTaskGroup(of: Void.self) { group in
            for index in names.indices {
                group.addTask { await self.probeLoop(index) }
            }
        }
        try? await threadPool.shutdownGracefully()
        for connection in connections { connection.close() }
    }

    private func probeLoop(_ index: Int) async {
        let interval = settings.databaseInterval.nanoseconds
        let timeout = settings.databaseTimeout.nanoseconds
        let connection = connections[index]
        while !Task.isCancelled {
            let started = NIODeadline.now()
            let result: Result<DatabaseObservation, Error>
            do {
                result = .success(try await threadPool.runIfActive { try connection.probe(timeoutNanoseconds: timeout) })
            } catch {
                result = .failure(error)
            }
            record(index, result, started: started)
            let elapsed = (NIODeadline.now() - started).nanoseconds
            try? await Task.sleep(for: .nanoseconds(max(0, interval - elapsed)))
        }
    }

    /// Folds one probe result into the state and recomputes roles and freshness for all.
    private func record(_ index: Int, _ result: Result<DatabaseObservation, Error>, started: NIODeadline) {
        let milliseconds = Double((NIODeadline.now() - started).nanoseconds) / 1e6
        var changes: [String] = []
        let snapshot: [DatabaseStatus] = state.withLockedValue { state in
            var status = state.statuses[index]
            status.probes += 1
            status.lastProbe = started
            status.lastProbeMilliseconds = milliseconds
            switch result {
            case .success(let observation):
                if !status.reachable { changes.append("\(status.name) reachable") }
                if let previous = status.observation, previous.inRecovery != observation.inRecovery {
                    changes.append("\(status.name) is now \(observation.inRecovery ? "a replica" : "a primary")")
                }
                status.reachable = true
                status.everProbed = true
                status.consecutiveFailures = 0
                status.observation = observation
                status.lastError = nil
            case .failure(let error):
                status.probeFailures += 1
                status.consecutiveFailures += 1
                status.lastError = "\(error)"
                status.everProbed = true
                if status.reachable, status.consecutiveFailures >= settings.databaseFall {
                    status.reachable = false
                    changes.append("\(status.name) unreachable: \(error)")
                }
            }
            state.statuses[index] = status
            Self.updateLag(&state, probedAt: Int64(started.uptimeNanoseconds), now: Int64(NIODeadline.now().uptimeNanoseconds),
                           changes: &changes)
            return state.statuses
        }
        if case .failure = result { metrics.countError("database_probe") }
        for change in changes {
            logger.notice("database state changed", metadata: ["change": "\(change)"])
        }
        routing.updateDatabases(snapshot.map { status in
            RoutingControl.DatabaseInput(
                probed: status.everProbed,
                observation: WriteTargetElection.Observation(reachable: status.reachable, inRecovery: status.observation?.inRecovery),
                freshness: status.freshness.state,
                replayLSN: status.observation?.inRecovery == true && status.reachable ? status.observation?.lsn : nil,
                position: status.reachable ? status.observation?.lsn : nil)
        })
    }

    /// Byte and time lag of every reachable replica against the current primary's WAL history,
    /// and freshness from them. Without a primary there is nothing to compare with: freshness
    /// stays as it was, so reads go on from the replicas.
    static func updateLag(_ state: inout MonitorState, probedAt: Int64, now: Int64, changes: inout [String]) {
        let observations = state.statuses.map { WriteTargetElection.Observation(reachable: $0.reachable, inRecovery: $0.observation?.inRecovery) }
        var primary: Int?
        if case .primary(let elected) = WriteTargetElection.elect(observations) { primary = elected }
        if primary != state.historyOf {
            state.history.reset()
            state.historyOf = primary
        }
        if let primary, let lsn = state.statuses[primary].observation?.lsn {
            state.history.record(lsn, at: probedAt)
        }
        for index in state.statuses.indices {
            var status = state.statuses[index]
            if index == primary || status.observation?.inRecovery == false {
                status.lag = nil
                if status.freshness.update(ReplicaLag(bytes: 0, seconds: 0)) != nil {
                    changes.append("\(status.name) fresh (primary)")
                }
                state.statuses[index] = status
                continue
            }
            var lag: ReplicaLag?
            if status.reachable, let replay = status.observation?.lsn {
                guard primary != nil, let measured = state.history.lag(replay: replay, now: now) else { continue }
                lag = measured
            }
            status.lag = lag
            if let changed = status.freshness.update(lag) {
                changes.append("\(status.name) \(changed.rawValue)" + (lag.map { " (lag \($0.bytes) bytes, \($0.seconds) s)" } ?? ""))
            }
            state.statuses[index] = status
        }
    }
}
