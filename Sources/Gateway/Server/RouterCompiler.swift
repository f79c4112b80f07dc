import Router

/// Turns the routing sections of the configuration into the Router's compiled form: names
/// become indices, patterns a trie, methods enums.
enum RouterCompiler {
    static func compile(_ config: GatewayConfig, pools: [PoolRuntime]) throws -> Router {
        var names = config.knownRegions
        if names.isEmpty { names = ["default"] }
        func region(_ name: String) -> Int { names.firstIndex(of: name) ?? 0 }

        let primaryRegion = config.pools.first { $0.role == .primary }?.region
        let defaultRegion = region(config.regions.defaultRegion ?? primaryRegion ?? names[0])
        let header = config.regions.header.map { header in
            (name: header.name, map: header.map.mapValues(region))
        }
        let cidrs = CIDRTable(config.regions.cidrs.map { ($0.block, region($0.region)) })
        var fallback = Array(repeating: [Int](), count: names.count)
        for entry in config.regions.fallback {
            fallback[region(entry.region)] = entry.next.map(region)
        }

        let definitions = pools.map { pool in
            PoolDefinition(
                name: pool.name, role: pool.role == .primary ? .primary : .replica,
                region: pool.region.map(region), servers: pool.servers.map(\.id), balancer: pool.balancer)
        }
        let cors = config.cors.map { entry in
            CORSPolicy(
                name: entry.name, allowOrigins: entry.policy.allowOrigins,
                allowMethods: entry.policy.allowMethods.map { RequestMethod($0.uppercased()) },
                allowHeaders: entry.policy.allowHeaders, exposeHeaders: entry.policy.exposeHeaders,
                allowCredentials: entry.policy.allowCredentials,
                maxAgeSeconds: entry.policy.maxAge.map { Int($0.seconds) })
        }
        let routes = config.routes.map { route in
            let conditions = RouteConditions(
                methods: route.methods.map { Set($0.map(RequestMethod.init)) },
                hosts: route.hosts.map(HostPattern.init),
                headers: route.headers.map { HeaderCondition(name: $0.name, value: $0.value) })
            let target: RouteTarget = switch route.to {
            case "auto": .auto
            case "primary": .primary
            default: .pool(pools.firstIndex { $0.name == route.to }!)
            }
            return RouteDefinition(
                entry: RouteTable.Entry(pattern: route.path, conditions: conditions), target: target,
                cors: route.cors.flatMap { name in config.cors.firstIndex { $0.name == name } })
        }
        return Router(
            pools: definitions, serverWeights: pools.flatMap { $0.servers.map(\.weight) }, routes: routes,
            regions: RegionResolver(names: names, defaultRegion: defaultRegion, header: header, cidrs: cidrs),
            readMethods: Set(config.readMethods.map(RequestMethod.init)), corsPolicies: cors, fallback: fallback)
    }
}
