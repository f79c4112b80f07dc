import NIOConcurrencyHelpers
import Router

/// The control plane's view of what may serve, and the one writer of `RoutingState`: operators
/// (maintenance), and later health checks and database probes, change its inputs; every change
/// publishes a fresh state to each event loop, which reads its own copy without locks.
final class RoutingControl: Sendable {
    struct Inputs: Sendable {
        /// Servers an operator took out of rotation.
        var maintenance: Set<Int> = []
    }

    private let inputs = NIOLockedValueBox(Inputs())
    private let router: Router
    private let serverCount: Int
    private let contexts: LoopContexts

    init(router: Router, serverCount: Int, contexts: LoopContexts) {
        self.router = router
        self.serverCount = serverCount
        self.contexts = contexts
    }

    var current: Inputs { inputs.withLockedValue { $0 } }

    func setMaintenance(server: Int, _ on: Bool) {
        inputs.withLockedValue { inputs in
            if on { inputs.maintenance.insert(server) } else { inputs.maintenance.remove(server) }
        }
        publish()
    }

    /// The routing state the inputs imply.
    func state() -> RoutingState {
        let inputs = self.inputs.withLockedValue { $0 }
        var state = RoutingState.allUp(servers: serverCount, pools: router.pools.count, writePool: router.configuredWritePool)
        for server in inputs.maintenance { state.serverAvailable[server] = false }
        return state
    }

    private func publish() {
        let state = self.state()
        contexts.forEach { $0.routingState = state }
    }
}
