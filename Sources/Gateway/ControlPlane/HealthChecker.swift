import Logging
import NIOConcurrencyHelpers
import NIOCore
import Router

/// The active health state of one server, for routing and the admin API.
struct ServerHealth: Sendable {
    var state: HealthCheckState
    var lastProbe: NIODeadline?
    var lastStatus: Int?
    var lastError: String?
    var lastMilliseconds: Double?
}

/// Active HTTP checks of every upstream server at `health.interval` (± jitter): `fall` failed
/// checks in a row take a server out of rotation, `rise` good ones bring it back. Runs as
/// structured concurrency beside the data path; its probes use the event loops' non-blocking I/O.
final class HealthChecker: Sendable {
    private let servers: [UpstreamServer]
    private let settings: HealthConfig
    private let group: EventLoopGroup
    private let routing: RoutingControl
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let health: NIOLockedValueBox<[ServerHealth]>

    /// - Parameter carrying: after a reload, the checker it replaces and, per server, the
    ///   server's number there if the reload kept it: its health (and rise/fall streak) goes on.
    init(servers: [UpstreamServer], settings: HealthConfig, group: EventLoopGroup, routing: RoutingControl,
         metrics: GatewayMetrics, logger: Logger, carrying: (checker: HealthChecker, servers: [Int?])? = nil) {
        self.servers = servers
        self.settings = settings
        self.group = group
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        var initial = servers.map { _ in ServerHealth(state: HealthCheckState(rise: settings.rise, fall: settings.fall)) }
        if let carrying, carrying.checker.settings.rise == settings.rise, carrying.checker.settings.fall == settings.fall {
            let old = carrying.checker.current
            for (server, previous) in carrying.servers.enumerated() {
                if let previous { initial[server] = old[previous] }
            }
        }
        health = NIOLockedValueBox(initial)
    }

    var current: [ServerHealth] { health.withLockedValue { $0 } }

    /// Checks until cancelled; does nothing without `health.path`.
    func run() async {
        guard let path = settings.path else { return }
        await withTaskGroup(of: Void.self) { group in
            for server in servers {
                group.addTask { await self.checkLoop(server, path: path) }
            }
        }
    }

    private func checkLoop(_ server: UpstreamServer, path: String) async {
        let interval = Double(settings.interval.nanoseconds)
        // Start at a random point of the first interval, so the servers are not checked in step.
        try? await Task.sleep(for: .nanoseconds(Int64(Double.random(in: 0..<interval * 0.5))))
        while !Task.isCancelled {
            let started = NIODeadline.now()
            let result: Result<Int, Error>
            do {
                result = .success(try await HTTPHealthProbe.check(server, path: path, timeout: settings.timeout.timeAmount,
                                                                  on: group.next()).get())
            } catch {
                result = .failure(error)
            }
            record(server, result, started: started)
            let jitter = 1 + Double.random(in: -settings.jitter...settings.jitter)
            let elapsed = Double((NIODeadline.now() - started).nanoseconds)
            try? await Task.sleep(for: .nanoseconds(Int64(max(0, interval * jitter - elapsed))))
        }
    }

    private func record(_ server: UpstreamServer, _ result: Result<Int, Error>, started: NIODeadline) {
        var success = false
        var detail = ""
        switch result {
        case .success(let status):
            success = settings.isExpected(status)
            detail = "status \(status)"
        case .failure(let error):
            detail = "\(error)"
        }
        let transition = health.withLockedValue { health -> HealthCheckState.Transition? in
            var entry = health[server.id]
            let transition = entry.state.record(success: success)
            entry.lastProbe = started
            entry.lastMilliseconds = Double((NIODeadline.now() - started).nanoseconds) / 1e6
            if case .success(let status) = result { entry.lastStatus = status } else { entry.lastStatus = nil }
            entry.lastError = success ? nil : detail
            health[server.id] = entry
            return transition
        }
        guard let transition else { return }
        let up = transition == .cameUp
        logger.warning(up ? "server is up" : "server is down", metadata: [
            "pool": "\(server.poolName)", "server": "\(server.authority)", "check": "\(detail)",
        ])
        metrics.countEvent("gateway_health_transitions_total", [("pool", server.poolName), ("server", server.authority), ("to", up ? "up" : "down")])
        routing.setHealth(server: server, up: up)
    }
}
