import Router

/// A routing setup like the demo's: a primary and three regional replica pools of two servers,
/// a region header and a CIDR table, and `routeCount` routes shaped like an API's (literals,
/// parameters, wildcards, method conditions), with requests spread over them.
struct RouterScenario {
    let router: Router
    let requests: [(request: Router.Request, path: String, headers: BenchHeaders)]
    var balancer = BalancerState(servers: 8, seed: 1)
    let state = RoutingState.allUp(servers: 8, pools: 4, writePool: 0)

    init(routeCount: Int) {
        let pools = [
            PoolDefinition(name: "primary", role: .primary, region: 0, servers: [0, 1], balancer: .leastRequest),
            PoolDefinition(name: "us", role: .replica, region: 0, servers: [2, 3], balancer: .leastRequest),
            PoolDefinition(name: "eu", role: .replica, region: 1, servers: [4, 5], balancer: .leastRequest),
            PoolDefinition(name: "ap", role: .replica, region: 2, servers: [6, 7], balancer: .roundRobin),
        ]
        let regions = RegionResolver(
            names: ["us-east", "eu-west", "ap-southeast"], defaultRegion: 0,
            header: (name: "CloudFront-Viewer-Country", map: ["DE": 1, "FR": 1, "SG": 2, "US": 0]),
            cidrs: CIDRTable([(CIDRBlock("10.1.0.0/16")!, 1), (CIDRBlock("10.2.0.0/16")!, 2), (CIDRBlock("2001:db8::/32")!, 1)]))
        var routes: [RouteDefinition] = []
        let resources = (0..<max(1, routeCount / 4)).map { "resource\($0)" }
        for resource in resources where routes.count < routeCount {
            let shapes: [(String, Set<RequestMethod>?, RouteTarget)] = [
                ("/api/v1/\(resource)/{id}", [.get], .auto),
                ("/api/v1/\(resource)/{id}", nil, .auto),
                ("/api/v1/\(resource)/{id}/items/*", [.get, .head], .auto),
                ("/api/v1/\(resource)/admin/**", nil, .primary),
            ]
            for (text, methods, target) in shapes where routes.count < routeCount {
                routes.append(RouteDefinition(entry: .init(pattern: try! PathPattern(text), conditions: .init(methods: methods)),
                                              target: target, cors: nil))
            }
        }
        router = Router(pools: pools, serverWeights: Array(repeating: 1, count: 8), routes: routes, regions: regions,
                        readMethods: [.get, .head, .options], corsPolicies: [], fallback: [[], [2], [1]])
        var requests: [(Router.Request, String, BenchHeaders)] = []
        let countries = ["DE", "SG", "US", "BR"]
        for i in 0..<64 {
            let resource = resources[(i * 7) % resources.count]
            let path: String
            switch i % 4 {
            case 0: path = "/api/v1/\(resource)/\(1000 + i)"
            case 1: path = "/api/v1/\(resource)/\(1000 + i)/items/x\(i)?page=2"
            case 2: path = "/api/v1/\(resource)/admin/users/\(i)"
            default: path = "/api/v2/unmatched/\(i)"
            }
            let method: RequestMethod = i % 5 == 0 ? .put : .get
            let headers = BenchHeaders(country: countries[i % countries.count])
            let client = IPAddress(i % 3 == 0 ? "10.1.0.\(i)" : "198.51.100.\(i)")
            requests.append((Router.Request(method: method, path: NormalizedPath(path), host: "api.example.com", client: client,
                                            headerTrusted: i % 2 == 0), path, headers))
        }
        self.requests = requests
    }

    /// The whole decision as the gateway makes it per request: normalize the path, match,
    /// classify, resolve the region, order the candidates and pick a server.
    mutating func decide(_ i: Int) -> Int {
        let entry = requests[i & 63]
        var request = entry.request
        request.path = NormalizedPath(entry.path)
        let decision = router.decide(request, headers: entry.headers, state: state, balancer: &balancer)
        return decision.server ?? -1
    }

    func matchOnly(_ i: Int) -> Int {
        let entry = requests[i & 63]
        return router.table.match(path: entry.request.path, method: entry.request.method, host: entry.request.host,
                                  headers: entry.headers)?.index ?? -1
    }
}

struct BenchHeaders: RequestHeaders {
    let country: String
    func firstValue(named name: String) -> String? {
        name.utf8.count == 25 ? country : nil
    }
}
