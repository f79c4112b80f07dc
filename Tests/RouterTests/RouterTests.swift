import Testing

@testable import Router

/// A primary pool in us-east and replica pools in eu-west, ap-southeast and us-east, two servers
/// each (server ids: pool index * 2 + 0/1).
func makeRouter(
    routes: [RouteDefinition] = [], readMethods: Set<RequestMethod> = [.get, .head, .options],
    balancer: BalancerKind = .leastRequest, weights: [Int]? = nil
) -> Router {
    let names = ["us-east", "eu-west", "ap-southeast"]
    let pools = [
        PoolDefinition(name: "primary", role: .primary, region: 0, servers: [0, 1], balancer: balancer),
        PoolDefinition(name: "eu", role: .replica, region: 1, servers: [2, 3], balancer: balancer),
        PoolDefinition(name: "ap", role: .replica, region: 2, servers: [4, 5], balancer: balancer),
        PoolDefinition(name: "us", role: .replica, region: 0, servers: [6, 7], balancer: balancer),
    ]
    let regions = RegionResolver(
        names: names, defaultRegion: 0,
        header: (name: "CloudFront-Viewer-Country", map: ["DE": 1, "fr": 1, "SG": 2, "US": 0]),
        cidrs: CIDRTable([(CIDRBlock("127.0.0.2/32")!, 1), (CIDRBlock("127.0.0.3/32")!, 2), (CIDRBlock("2001:db8:e::/48")!, 1)]))
    return Router(pools: pools, serverWeights: weights ?? Array(repeating: 1, count: 8), routes: routes, regions: regions,
                  readMethods: readMethods, corsPolicies: [], fallback: [[], [2], [1]])
}

func request(_ method: RequestMethod, _ path: String = "/api/x", client: String? = "203.0.113.9", trusted: Bool = false) -> Router.Request {
    Router.Request(method: method, path: NormalizedPath(path), host: "api.example", client: client.flatMap { IPAddress($0) },
                   headerTrusted: trusted)
}

@Suite struct RouterDecisionTests {
    var balancer = BalancerState(servers: 8, seed: 7)
    let allUp = RoutingState.allUp(servers: 8, pools: 4, writePool: 0)

    @Test mutating func readsGoToTheClientsRegionWritesToThePrimary() {
        let router = makeRouter()
        let eu = Headers(fields: ["cloudfront-viewer-country": "DE"])
        let read = router.decide(request(.get, trusted: true), headers: eu, state: allUp, balancer: &balancer)
        #expect(read.isRead && read.region == 1 && read.pool == 1 && !read.toWritePool)
        #expect([2, 3].contains(read.server!))
        for method in [RequestMethod.post, .put, .patch, .delete, .other("PURGE")] {
            let write = router.decide(request(method, trusted: true), headers: eu, state: allUp, balancer: &balancer)
            #expect(!write.isRead && write.pool == 0 && write.toWritePool, "\(method)")
        }
        // Default region: us-east's replica pool, not the primary.
        let local = router.decide(request(.get), headers: Headers(), state: allUp, balancer: &balancer)
        #expect(local.region == 0 && local.pool == 3)
    }

    @Test mutating func regionHeaderOnlyFromTrustedPeers() {
        let router = makeRouter()
        let forged = Headers(fields: ["cloudfront-viewer-country": "SG"])
        #expect(router.decide(request(.get, trusted: false), headers: forged, state: allUp, balancer: &balancer).region == 0)
        #expect(router.decide(request(.get, trusted: true), headers: forged, state: allUp, balancer: &balancer).region == 2)
        // Values are matched case-insensitively, and a region's own name works too.
        #expect(router.regions.resolve(client: nil, headerTrusted: true, headers: Headers(fields: ["cloudfront-viewer-country": "FR"])) == 1)
        #expect(router.regions.resolve(client: nil, headerTrusted: true, headers: Headers(fields: ["cloudfront-viewer-country": "ap-southeast"])) == 2)
        // Unknown value: CIDR, then default.
        #expect(router.regions.resolve(client: IPAddress("127.0.0.3"), headerTrusted: true, headers: Headers(fields: ["cloudfront-viewer-country": "ZZ"])) == 2)
    }

    @Test mutating func cidrRegionsForIPv4AndIPv6() {
        let router = makeRouter()
        #expect(router.decide(request(.get, client: "127.0.0.2"), headers: Headers(), state: allUp, balancer: &balancer).pool == 1)
        #expect(router.decide(request(.get, client: "127.0.0.3"), headers: Headers(), state: allUp, balancer: &balancer).pool == 2)
        #expect(router.decide(request(.get, client: "2001:db8:e::77"), headers: Headers(), state: allUp, balancer: &balancer).pool == 1)
        #expect(router.decide(request(.get, client: "2001:db8:f::77"), headers: Headers(), state: allUp, balancer: &balancer).pool == 3)
        #expect(router.decide(request(.get, client: nil), headers: Headers(), state: allUp, balancer: &balancer).region == 0)
    }

    @Test mutating func theCandidateOrderSaysWhyAPoolIsPassedOver() {
        let router = makeRouter()
        var state = allUp
        let eu = request(.get, client: "127.0.0.2")
        var decision = router.route(eu, headers: Headers())
        router.pick(&decision, state: state, balancer: &balancer)
        #expect(router.candidateOrder(of: decision, state: state) == [.pool(1), .pool(2), .pool(0)])
        // eu-west over max_lag; ap-southeast promoted (it takes writes now): the write pool serves.
        state.poolFresh[1] = false
        state.writePool = 2
        router.pick(&decision, state: state, balancer: &balancer)
        #expect(router.candidateOrder(of: decision, state: state) == [.skipped(pool: 1, .stale), .skipped(pool: 2, .takesWrites), .pool(2)])
        #expect(decision.pool == 2)
        // A read that must see the client's write, which eu-west has not replayed.
        state = allUp
        state.replayLSN[1] = LSN(100)
        state.replayLSN[2] = LSN(900)
        decision.requirement = .replayed(LSN(500))
        router.pick(&decision, state: state, balancer: &balancer)
        #expect(router.candidateOrder(of: decision, state: state) == [.skipped(pool: 1, .notReplayed), .pool(2), .pool(0)])
        #expect(decision.pool == 2)
        // No pool takes writes: a write has nowhere to go, and says so.
        state.writePool = nil
        var write = router.route(request(.post), headers: Headers())
        router.pick(&write, state: state, balancer: &balancer)
        #expect(router.candidateOrder(of: write, state: state) == [.skipped(pool: nil, .noWritePool)])
        #expect(write.pool == nil && write.noWritePool)
    }

    @Test mutating func fallbackOrderThenPrimary() {
        let router = makeRouter()
        var state = allUp
        // eu-west's servers are down: its fallback region ap-southeast serves.
        state.serverAvailable[2] = false
        state.serverAvailable[3] = false
        let eu = request(.get, client: "127.0.0.2")
        var decision = router.decide(eu, headers: Headers(), state: state, balancer: &balancer)
        #expect(decision.pool == 2 && !decision.toWritePool)
        // ap-southeast too: the primary.
        state.serverAvailable[4] = false
        state.serverAvailable[5] = false
        decision = router.decide(eu, headers: Headers(), state: state, balancer: &balancer)
        #expect(decision.pool == 0 && decision.toWritePool)
        // A stale pool (replica lag) is skipped like a dead one.
        state = allUp
        state.poolFresh[1] = false
        #expect(router.decide(eu, headers: Headers(), state: state, balancer: &balancer).pool == 2)
        // Nothing at all.
        state = RoutingState(serverAvailable: Array(repeating: false, count: 8), poolFresh: [true, true, true, true], writePool: 0)
        decision = router.decide(eu, headers: Headers(), state: state, balancer: &balancer)
        #expect(decision.pool == nil && decision.server == nil && !decision.noWritePool)
    }

    @Test mutating func advanceTriesTheNextCandidate() {
        let router = makeRouter()
        var decision = router.decide(request(.get, client: "127.0.0.2"), headers: Headers(), state: allUp, balancer: &balancer)
        #expect(decision.pool == 1)
        router.advance(&decision, state: allUp, balancer: &balancer)
        #expect(decision.pool == 2)
        router.advance(&decision, state: allUp, balancer: &balancer)
        #expect(decision.pool == 0)
        router.advance(&decision, state: allUp, balancer: &balancer)
        #expect(decision.pool == nil)
    }

    @Test mutating func routeTargetsAndReadMethods() {
        let routes = [
            RouteDefinition(entry: .init(pattern: pattern("/api/auth/**")), target: .primary, cors: nil),
            RouteDefinition(entry: .init(pattern: pattern("/reports/**")), target: .pool(2), cors: nil),
        ]
        let router = makeRouter(routes: routes, readMethods: [.get, .head, .options, .other("SEARCH")])
        let login = router.decide(request(.get, "/api/auth/session", client: "127.0.0.2"), headers: Headers(), state: allUp, balancer: &balancer)
        #expect(login.route == 0 && login.pool == 0 && login.isRead && login.toWritePool)
        let report = router.decide(request(.post, "/reports/daily"), headers: Headers(), state: allUp, balancer: &balancer)
        #expect(report.route == 1 && report.pool == 2)
        #expect(router.decide(request(.other("SEARCH"), client: "127.0.0.2"), headers: Headers(), state: allUp, balancer: &balancer).pool == 1)
    }

    @Test mutating func writesWithoutAPrimaryFailFast() {
        let router = makeRouter()
        let state = RoutingState.allUp(servers: 8, pools: 4, writePool: nil)
        let write = router.decide(request(.post), headers: Headers(), state: state, balancer: &balancer)
        #expect(write.pool == nil && write.noWritePool)
        // Reads go on from the replicas.
        #expect(router.decide(request(.get, client: "127.0.0.2"), headers: Headers(), state: state, balancer: &balancer).pool == 1)
        // A promoted replica pool takes the writes.
        var promoted = allUp
        promoted.writePool = 2
        #expect(router.decide(request(.put), headers: Headers(), state: promoted, balancer: &balancer).pool == 2)
        // ... and is no longer read from as a replica ahead of others.
        #expect(router.decide(request(.get, client: "127.0.0.3"), headers: Headers(), state: promoted, balancer: &balancer).pool == 1)
    }
}

@Suite struct BalancerTests {
    @Test func weightedRoundRobinFollowsWeightsSmoothly() {
        var state = BalancerState(servers: 3, seed: 1)
        var picks: [Int] = []
        // Two whole cycles of total weight 8: exactly 10, 2 and 4 picks.
        for _ in 0..<16 {
            picks.append(LoadBalancer.pick(.roundRobin, servers: [0, 1, 2], weights: [5, 1, 2], available: [true, true, true], state: &state)!)
        }
        #expect(picks.filter { $0 == 0 }.count == 10)
        #expect(picks.filter { $0 == 1 }.count == 2)
        #expect(picks.filter { $0 == 2 }.count == 4)
        // Smooth: the heavy server is never picked more than twice in a row here.
        #expect(!picks.indices.dropFirst(2).contains { picks[$0] == 0 && picks[$0 - 1] == 0 && picks[$0 - 2] == 0 })
        // Unavailable servers are skipped.
        for _ in 0..<10 {
            #expect(LoadBalancer.pick(.roundRobin, servers: [0, 1, 2], weights: [5, 1, 2], available: [false, true, false], state: &state) == 1)
        }
    }

    @Test func leastRequestPrefersTheLessLoaded() {
        var state = BalancerState(servers: 4, seed: 3)
        state.inFlight = [10, 0, 10, 10]
        var counts = [0, 0, 0, 0]
        for _ in 0..<3000 {
            counts[LoadBalancer.pick(.leastRequest, servers: [0, 1, 2, 3], weights: [1, 1, 1, 1], available: [true, true, true, true], state: &state)!] += 1
        }
        // Server 1 wins every draw it is in: 1 - (3/4 * 2/3) = half of all picks.
        #expect(counts[1] > 1350 && counts[1] < 1650)
        // Equal load: an even spread.
        state.inFlight = [0, 0, 0, 0]
        counts = [0, 0, 0, 0]
        for _ in 0..<4000 {
            counts[LoadBalancer.pick(.leastRequest, servers: [0, 1, 2, 3], weights: [1, 1, 1, 1], available: [true, true, true, true], state: &state)!] += 1
        }
        #expect(counts.allSatisfy { $0 > 800 && $0 < 1200 }, "\(counts)")
        #expect(LoadBalancer.pick(.leastRequest, servers: [0, 1], weights: [1, 1], available: [false, false, true, true], state: &state) == nil)
    }

    @Test func leastRequestHonoursWeights() {
        var state = BalancerState(servers: 2, seed: 9)
        state.inFlight = [4, 2]
        // 4 in flight on weight 4 (1 per unit) beats 2 on weight 1.
        #expect(LoadBalancer.pick(.leastRequest, servers: [0, 1], weights: [4, 1], available: [true, true], state: &state) == 0)
    }
}

@Suite struct ClientAddressTests {
    let trusted = CIDRSet([CIDRBlock("10.0.0.0/8")!, CIDRBlock("127.0.0.1")!])

    @Test func untrustedPeerIsTheClient() {
        #expect(ClientAddress.resolve(peer: IPAddress("203.0.113.5")!, trusted: trusted, forwardedFor: "1.1.1.1", forwarded: nil)
            == IPAddress("203.0.113.5"))
    }

    @Test func rightmostUntrustedHop() {
        // The client forged 6.6.6.6; the first proxy appended the real address; an internal proxy followed.
        #expect(ClientAddress.resolve(peer: IPAddress("10.1.1.1")!, trusted: trusted,
                                      forwardedFor: "6.6.6.6, 198.51.100.7, 10.2.2.2", forwarded: nil) == IPAddress("198.51.100.7"))
        #expect(ClientAddress.resolve(peer: IPAddress("127.0.0.1")!, trusted: trusted,
                                      forwardedFor: "[2001:db8::5]:443", forwarded: nil) == IPAddress("2001:db8::5"))
        #expect(ClientAddress.resolve(peer: IPAddress("10.1.1.1")!, trusted: trusted, forwardedFor: nil,
                                      forwarded: "for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"") == IPAddress("2001:db8::17"))
        // Only trusted hops: the leftmost one.
        #expect(ClientAddress.resolve(peer: IPAddress("10.1.1.1")!, trusted: trusted, forwardedFor: "10.9.9.9, 10.8.8.8", forwarded: nil)
            == IPAddress("10.9.9.9"))
        // Nothing usable: the peer.
        #expect(ClientAddress.resolve(peer: IPAddress("10.1.1.1")!, trusted: trusted, forwardedFor: "garbage", forwarded: nil)
            == IPAddress("10.1.1.1"))
    }
}

@Suite struct ReadRequirementTests {
    @Test func pinnedAndReplayedRequirements() {
        let router = makeRouter()
        var balancer = BalancerState(servers: 8, seed: 2)
        var state = RoutingState.allUp(servers: 8, pools: 4, writePool: 0)
        state.replayLSN = [LSN(900), LSN(500), LSN(800), nil]
        func decide(_ requirement: Router.ReadRequirement) -> Int? {
            var request = request(.get, client: "127.0.0.2")
            request.requirement = requirement
            return router.decide(request, headers: Headers(), state: state, balancer: &balancer).pool
        }
        #expect(decide(.any) == 1)
        #expect(decide(.writePool) == 0)
        // eu (500) has not replayed 600; its fallback ap (800) has.
        #expect(decide(.replayed(LSN(600))) == 2)
        #expect(decide(.replayed(LSN(500))) == 1)
        // No replica has 850: the primary.
        #expect(decide(.replayed(LSN(850))) == 0)
        #expect(router.replicaCandidates(region: 1, state: state) == [1, 2])
    }
}
