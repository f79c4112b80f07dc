import Router

/// Micro-benchmarks of the pure logic on the request path, in nanoseconds per operation.
/// Run: swift run -c release gateway-bench [filter]
let filter = CommandLine.arguments.dropFirst().first

var benchmarks: [MicroBenchmark] = []
for routeCount in [10, 200] {
    var scenario = RouterScenario(routeCount: routeCount)
    benchmarks.append(MicroBenchmark(name: "router.decide (\(routeCount) routes)") { iterations in
        var sum = 0
        for i in 0..<iterations { sum &+= scenario.decide(i) }
        blackHole(sum)
    })
    let matcher = scenario
    benchmarks.append(MicroBenchmark(name: "router.match only (\(routeCount) routes)") { iterations in
        var sum = 0
        for i in 0..<iterations { sum &+= matcher.matchOnly(i) }
        blackHole(sum)
    })
}
let paths = ["/api/v1/users/42", "/api/v1/users/42/items/7?x=1", "/api//v1/%75sers/../users/42"]
benchmarks.append(MicroBenchmark(name: "path normalization (clean and dirty)") { iterations in
    var count = 0
    for i in 0..<iterations { count &+= NormalizedPath(paths[i % 3]).path.utf8.count }
    blackHole(count)
})
var balancer = BalancerState(servers: 4, seed: 3)
let available = [true, true, true, true]
benchmarks.append(MicroBenchmark(name: "balancer least_request (4 servers)") { iterations in
    var sum = 0
    for _ in 0..<iterations {
        sum &+= LoadBalancer.pick(.leastRequest, servers: [0, 1, 2, 3], weights: [1, 1, 1, 1], available: available, state: &balancer) ?? 0
    }
    blackHole(sum)
})
benchmarks.append(MicroBenchmark(name: "balancer round_robin (4 servers)") { iterations in
    var sum = 0
    for _ in 0..<iterations {
        sum &+= LoadBalancer.pick(.roundRobin, servers: [0, 1, 2, 3], weights: [3, 1, 1, 1], available: available, state: &balancer) ?? 0
    }
    blackHole(sum)
})

print("benchmark".padding(44) + "median ns".leftPad(12) + "p90 ns".leftPad(10) + "best ns".leftPad(10))
for benchmark in benchmarks where filter == nil || benchmark.name.contains(filter!) {
    let result = measure(benchmark)
    print(benchmark.name.padding(44) + format(result.median).leftPad(12) + format(result.p90).leftPad(10) + format(result.best).leftPad(10))
}

func format(_ value: Double) -> String {
    let tenths = Int(value * 10 + 0.5)
    return "\(tenths / 10).\(tenths % 10)"
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
