/// A pool as the Router sees it.
public struct PoolDefinition: Sendable {
    public enum Role: Sendable, Equatable { case primary, replica }

    public let name: String
    public let role: Role
    /// Index into the region list; replica pools always have one.
    public let region: Int?
    /// Global server indices.
    public let servers: [Int]
    public let balancer: BalancerKind

    public init(name: String, role: Role, region: Int?, servers: [Int], balancer: BalancerKind) {
        self.name = name
        self.role = role
        self.region = region
        self.servers = servers
        self.balancer = balancer
    }
}

/// Where a route sends requests.
public enum RouteTarget: Sendable, Equatable {
    /// Reads to the client's region's replicas (then fallbacks, then the primary); writes to
    /// the primary.
    case auto
    /// Everything to the pool that takes writes (sessions, logins, anything that must not read
    /// stale data).
    case primary
    /// Everything to this pool.
    case pool(Int)
}

public struct RouteDefinition: Sendable {
    public let entry: RouteTable.Entry
    public let target: RouteTarget
    /// Index into `Router.corsPolicies`.
    public let cors: Int?

    public init(entry: RouteTable.Entry, target: RouteTarget, cors: Int?) {
        self.entry = entry
        self.target = target
        self.cors = cors
    }
}

/// The routing decision for one request, with no I/O: which route matched, read or write, the
/// client's region, and the pools to try in order; then a server by the pool's balancer.
/// Everything is compiled at configuration time; a decision allocates only for the captured
/// path parameters.
public final class Router: Sendable {
    public let pools: [PoolDefinition]
    public let serverWeights: [Int]
    public let routes: [RouteDefinition]
    public let table: RouteTable
    public let regions: RegionResolver
    public let readMethods: MethodSet
    public let corsPolicies: [CORSPolicy]
    /// Per region: the replica pools a read tries, the region's own first, then its fallback
    /// regions' in order. The pool taking writes is tried after these.
    public let readOrder: [[Int]]

    /// What a client's earlier writes demand of a read (read-your-writes).
    public enum ReadRequirement: Sendable, Equatable {
        case any
        /// Pinned to the pool taking writes.
        case writePool
        /// Only replicas that have replayed this WAL position (else the write pool).
        case replayed(LSN)
    }

    public struct Request {
        public var method: RequestMethod
        public var path: NormalizedPath
        public var host: String?
        public var client: IPAddress?
        /// Region headers are believed only from trusted proxies.
        public var headerTrusted: Bool
        public var requirement: ReadRequirement

        public init(method: RequestMethod, path: NormalizedPath, host: String?, client: IPAddress?, headerTrusted: Bool,
                    requirement: ReadRequirement = .any) {
            self.method = method
            self.path = path
            self.host = host
            self.client = client
            self.headerTrusted = headerTrusted
            self.requirement = requirement
        }
    }

    public struct Decision: Sendable {
        public var route: Int?
        public var isRead: Bool
        public var region: Int
        /// Where the matched route sends requests.
        public var routeTarget: RouteTarget
        /// Where this request goes: the route's target, or the primary for a read pinned there.
        public var target: RouteTarget
        /// The chosen pool and server; nil when no candidate had an available server.
        public var pool: Int?
        public var server: Int?
        /// The chosen pool is the one taking writes (what `X-Gateway-Target: primary` says).
        public var toWritePool: Bool
        /// A write (or primary-bound request) found no pool taking writes.
        public var noWritePool: Bool
        /// Position of `pool` in the candidate order, for trying the next one.
        public var candidatePosition: Int
        public var requirement: ReadRequirement
    }

    public init(pools: [PoolDefinition], serverWeights: [Int], routes: [RouteDefinition], regions: RegionResolver,
                readMethods: Set<RequestMethod>, corsPolicies: [CORSPolicy], fallback: [[Int]]) {
        self.pools = pools
        self.serverWeights = serverWeights
        self.routes = routes
        self.table = RouteTable(routes.map(\.entry))
        self.regions = regions
        self.readMethods = MethodSet(readMethods)
        self.corsPolicies = corsPolicies
        var order: [[Int]] = []
        for region in regions.names.indices {
            var list: [Int] = []
            for candidate in [region] + (region < fallback.count ? fallback[region] : []) {
                for (index, pool) in pools.enumerated() where pool.role == .replica && pool.region == candidate && !list.contains(index) {
                    list.append(index)
                }
            }
            order.append(list)
        }
        self.readOrder = order
    }

    /// The first pool with role primary: who takes writes until the databases say otherwise.
    public var configuredWritePool: Int? { pools.firstIndex { $0.role == .primary } }

    /// The whole decision at once: `route`, then `pick`.
    public func decide(
        _ request: Request, headers: some RequestHeaders, state: RoutingState, balancer: inout BalancerState
    ) -> Decision {
        var decision = route(request, headers: headers)
        pick(&decision, state: state, balancer: &balancer)
        return decision
    }

    /// What needs no state: the route that matches, read or write, the client's region. No pool
    /// is chosen yet (`pick` does that, once the request's filters have had their say).
    public func route(_ request: Request, headers: some RequestHeaders) -> Decision {
        let match = table.match(path: request.path, method: request.method, host: request.host, headers: headers)
        let target = match.map { routes[$0.index].target } ?? .auto
        let region = regions.resolve(client: request.client, headerTrusted: request.headerTrusted, headers: headers)
        return Decision(
            route: match?.index, isRead: readMethods.contains(request.method), region: region, routeTarget: target,
            target: target, pool: nil, server: nil, toWritePool: false, noWritePool: false, candidatePosition: -1,
            requirement: request.requirement)
    }

    /// Chooses the first candidate pool with an available server, from the start of the
    /// candidate order, under the decision's read requirement (again after the requirement
    /// changed or the state moved on).
    public func pick(_ decision: inout Decision, state: RoutingState, balancer: inout BalancerState) {
        decision.target = decision.requirement == .writePool && decision.routeTarget == .auto ? .primary : decision.routeTarget
        decision.candidatePosition = -1
        decision.toWritePool = false
        decision.noWritePool = false
        advance(&decision, state: state, balancer: &balancer)
    }

    /// Moves `decision` to the next candidate pool with an available server (a retry after the
    /// chosen one failed); leaves `pool`/`server` nil when none is left.
    public func advance(_ decision: inout Decision, state: RoutingState, balancer: inout BalancerState, excluding: Int? = nil) {
        decision.pool = nil
        decision.server = nil
        var position = decision.candidatePosition + 1
        while let slot = candidate(decision, at: position, state: state) {
            if case .pool(let pool) = slot {
                let definition = pools[pool]
                if let server = pickServer(in: definition, state: state, balancer: &balancer, excluding: excluding) {
                    decision.pool = pool
                    decision.server = server
                    decision.toWritePool = pool == state.writePool
                    decision.candidatePosition = position
                    return
                }
            }
            position += 1
        }
        decision.candidatePosition = position
        if state.writePool == nil {
            switch decision.target {
            case .primary: decision.noWritePool = true
            case .auto: decision.noWritePool = !decision.isRead
            case .pool: break
            }
        }
    }

    /// After `failed` could not serve: another server of the same pool first, else the next
    /// candidate pool (leaving `pool`/`server` nil when nothing is left).
    public func retry(_ decision: inout Decision, failed: Int, state: RoutingState, balancer: inout BalancerState) {
        if let pool = decision.pool,
           let server = pickServer(in: pools[pool], state: state, balancer: &balancer, excluding: failed) {
            decision.server = server
            return
        }
        advance(&decision, state: state, balancer: &balancer, excluding: failed)
    }

    /// One place in a decision's candidate order.
    public enum CandidateSlot: Sendable, Equatable {
        /// A pool to try (its servers may still all be unavailable).
        case pool(Int)
        /// Passed over, and why.
        case skipped(pool: Int?, SkipReason)
    }

    public enum SkipReason: String, Sendable {
        /// Over its `max_lag`, or its databases not probed yet.
        case stale
        /// The replica pool takes writes now (after a promotion): it is tried as the write pool.
        case takesWrites = "takes_writes"
        /// It has not replayed the client's last write (read-your-writes).
        case notReplayed = "not_replayed"
        /// No pool takes writes (no primary, or two).
        case noWritePool = "no_write_pool"
    }

    /// The slot at `position` of a decision's candidate order; nil past the end.
    private func candidate(_ decision: Decision, at position: Int, state: RoutingState) -> CandidateSlot? {
        func writePool() -> CandidateSlot { state.writePool.map { .pool($0) } ?? .skipped(pool: nil, .noWritePool) }
        switch decision.target {
        case .pool(let pool):
            return position == 0 ? .pool(pool) : nil
        case .primary:
            return position == 0 ? writePool() : nil
        case .auto:
            guard decision.isRead else { return position == 0 ? writePool() : nil }
            let replicas = readOrder[decision.region]
            if position < replicas.count {
                let pool = replicas[position]
                // A replica pool too far behind (or not probed) gets no reads, nor one that has
                // not replayed what this client wrote.
                if pool == state.writePool { return .skipped(pool: pool, .takesWrites) }
                if !state.poolFresh[pool] { return .skipped(pool: pool, .stale) }
                if case .replayed(let needed) = decision.requirement, !(state.replayLSN[pool].map { $0 >= needed } ?? false) {
                    return .skipped(pool: pool, .notReplayed)
                }
                return .pool(pool)
            }
            return position == replicas.count ? writePool() : nil
        }
    }

    /// The whole candidate order of `decision` (its target, region and read requirement) under
    /// `state`, as `advance` walks it: what `/admin/explain` shows.
    public func candidateOrder(of decision: Decision, state: RoutingState) -> [CandidateSlot] {
        var slots: [CandidateSlot] = []
        var position = 0
        while let slot = candidate(decision, at: position, state: state) {
            slots.append(slot)
            position += 1
        }
        return slots
    }

    private func pickServer(in pool: PoolDefinition, state: RoutingState, balancer: inout BalancerState, excluding: Int?) -> Int? {
        guard let excluding, pool.servers.contains(excluding) else {
            return LoadBalancer.pick(pool.balancer, servers: pool.servers, weights: serverWeights,
                                     available: state.serverAvailable, state: &balancer)
        }
        var available = state.serverAvailable
        available[excluding] = false
        return LoadBalancer.pick(pool.balancer, servers: pool.servers, weights: serverWeights, available: available, state: &balancer)
    }

    /// The replica pools a read from `region` would use if they had replayed enough: what a
    /// read-your-writes read may wait for.
    public func replicaCandidates(region: Int, state: RoutingState) -> [Int] {
        readOrder[region].filter { pool in
            state.poolFresh[pool] && pool != state.writePool && pools[pool].servers.contains { state.serverAvailable[$0] }
        }
    }

    /// The `{name}` segments the decision's route captured (computed on demand: most requests
    /// never need them).
    public func parameters(of decision: Decision, path: NormalizedPath) -> [Substring] {
        guard let route = decision.route else { return [] }
        return table.parameters(of: RouteTable.Match(index: route), path: path)
    }

    /// The CORS policy of a matched route.
    public func cors(for decision: Decision) -> CORSPolicy? {
        guard let route = decision.route, let index = routes[route].cors else { return nil }
        return corsPolicies[index]
    }
}
