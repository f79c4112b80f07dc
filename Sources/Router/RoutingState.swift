/// What the Router needs to know about the world, as a value: which servers may take requests
/// and which pools are fresh enough for reads. Health checks, outlier detection, replica lag
/// probes and the admin API produce new values; each event loop reads its own copy.
public struct RoutingState: Sendable, Equatable {
    /// Per server (global index): may take new requests.
    public var serverAvailable: [Bool]
    /// Per pool: its database is fresh enough to serve reads (replica lag within bounds, or
    /// unknown-but-tolerated).
    public var poolFresh: [Bool]
    /// The pool that takes writes now; nil when no database is primary (writes then fail fast).
    public var writePool: Int?
    /// Per pool: the WAL position its database has replayed, when known (read-your-writes).
    public var replayLSN: [LSN?]
    /// Per pool: the WAL position its database is known to have reached (a primary's current
    /// position, a replica's replayed one) at the last probe — a lower bound of what a response
    /// from the pool reflects (cached responses are labelled with it).
    public var positionLSN: [LSN?]

    public init(serverAvailable: [Bool], poolFresh: [Bool], writePool: Int?, replayLSN: [LSN?]? = nil, positionLSN: [LSN?]? = nil) {
        self.serverAvailable = serverAvailable
        self.poolFresh = poolFresh
        self.writePool = writePool
        self.replayLSN = replayLSN ?? Array(repeating: nil, count: poolFresh.count)
        self.positionLSN = positionLSN ?? Array(repeating: nil, count: poolFresh.count)
    }

    /// Everything up, every pool fresh, writes to `writePool`.
    public static func allUp(servers: Int, pools: Int, writePool: Int?) -> RoutingState {
        RoutingState(serverAvailable: Array(repeating: true, count: servers),
                     poolFresh: Array(repeating: true, count: pools), writePool: writePool)
    }
}
