import Cache
import HTTPWire
import Router

/// Read-your-writes for one request: what the client's earlier writes demand of a read, how it
/// was met, and (for a write) who to record the new token for.
struct ReadYourWrites {
    /// Reported in `X-Gateway-Consistency` and `gateway_consistency_reads_total{outcome}`.
    enum Outcome: String {
        /// A replica had already replayed the client's write.
        case replicaFresh = "replica-fresh"
        /// A replica replayed it while the read waited (at most `max_wait`).
        case waited
        /// The primary served the read (time mode, or no replica caught up in time).
        case primaryPinned = "primary-pinned"
    }

    let isRead: Bool
    var requirement: Router.ReadRequirement = .any
    var outcome: Outcome?
    /// The hashed identity to record a write's token for (when a store is configured); for a
    /// read with `store: redis` and no token of its own, the identity to look up.
    var identity: String?
    /// Every replica has replayed the token's position: the client can forget it.
    var dropToken = false
    /// The read already waited for a replica (it waits at most once).
    var waited = false
    /// A write's new token, as headers of its response.
    var issued: [(String, String)] = []
    /// That token (recorded in Redis with `store: redis`).
    var issuedToken: ConsistencyToken?

    /// - Parameter identity: the exchange's identity (computed when first asked for).
    static func prepare(_ head: HTTPHead, identity: () -> String?, runtime: GatewayRuntime) -> ReadYourWrites {
        let consistency = runtime.consistency
        var state = ReadYourWrites(isRead: runtime.router.readMethods.contains(head.method))
        let now = ConsistencyRuntime.unixMilliseconds()
        if state.isRead {
            var token = consistency.presentedToken(head, now: now / 1000)
            if token == nil, let store = consistency.store, let identity = identity() {
                token = store.lookup(identity, now: now / 1000)
            } else if token == nil, consistency.sharedStore {
                state.identity = identity()
            }
            state.require(token, now: now)
        } else if consistency.keepsTokensByIdentity {
            state.identity = identity()
        }
        return state
    }

    /// What a token demands of this read (nothing once a time pin has passed).
    mutating func require(_ token: ConsistencyToken?, now: Int64) {
        switch token?.requirement {
        case .primaryUntil(let until) where until > now: requirement = .writePool
        case .replayed(let lsn): requirement = .replayed(lsn)
        default: break
        }
    }

    /// Names the outcome of a read with a requirement, once routed.
    mutating func settle(_ decision: Router.Decision, state: RoutingState, router: Router) {
        guard isRead, requirement != .any else { return }
        if outcome == nil {
            outcome = decision.toWritePool || requirement == .writePool ? .primaryPinned : .replicaFresh
        }
        if case .replayed(let needed) = requirement {
            dropToken = router.pools.indices.allSatisfy { pool in
                router.pools[pool].role != .replica || state.replayLSN[pool].map { $0 >= needed } ?? false
            }
        }
    }
}
