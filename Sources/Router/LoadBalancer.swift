/// How a pool spreads requests over its servers.
public enum BalancerKind: String, Sendable, CaseIterable {
    /// Power of two choices: two random available servers, the one with fewer requests in
    /// flight (divided by weight) wins. Envoy's default; adapts to slow servers at once.
    case leastRequest = "least_request"
    /// Smooth weighted round robin (nginx's): interleaves servers in proportion to weight.
    case roundRobin = "round_robin"
}

/// Per-event-loop balancing state: requests in flight and round-robin weights per server.
/// Each loop balances on its own, as Envoy's workers do; no locks.
public struct BalancerState: Sendable {
    public var inFlight: [Int]
    var currentWeight: [Int]
    var random: Xorshift

    public init(servers: Int, seed: UInt64? = nil) {
        inFlight = Array(repeating: 0, count: servers)
        currentWeight = Array(repeating: 0, count: servers)
        random = Xorshift(seed: seed)
    }
}

/// xorshift64*: the balancers' randomness (not for anything secret).
public struct Xorshift: Sendable {
    var state: UInt64

    public init(seed: UInt64? = nil) {
        var system = SystemRandomNumberGenerator()
        state = (seed ?? system.next()) | 1
    }

    public mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2685821657736338717
    }

    public mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next() >> 1) % bound
    }
}

public enum LoadBalancer {
    /// Picks a server among `servers` (global indices) whose `available` flag is set.
    public static func pick(
        _ kind: BalancerKind, servers: [Int], weights: [Int], available: [Bool], state: inout BalancerState
    ) -> Int? {
        switch kind {
        case .leastRequest: leastRequest(servers: servers, weights: weights, available: available, state: &state)
        case .roundRobin: roundRobin(servers: servers, weights: weights, available: available, state: &state)
        }
    }

    static func leastRequest(servers: [Int], weights: [Int], available: [Bool], state: inout BalancerState) -> Int? {
        var count = 0
        for server in servers where available[server] { count += 1 }
        guard count > 0 else { return nil }
        func nth(_ n: Int) -> Int {
            var seen = 0
            for server in servers where available[server] {
                if seen == n { return server }
                seen += 1
            }
            return servers[0]
        }
        if count == 1 { return nth(0) }
        let first = state.random.below(count)
        var second = state.random.below(count - 1)
        if second >= first { second += 1 }
        let a = nth(first), b = nth(second)
        // Compare inFlight/weight without division: a/wa < b/wb  ⇔  a*wb < b*wa.
        let loadA = state.inFlight[a] * weights[b]
        let loadB = state.inFlight[b] * weights[a]
        if loadA == loadB { return weights[a] >= weights[b] ? a : b }
        return loadA < loadB ? a : b
    }

    static func roundRobin(servers: [Int], weights: [Int], available: [Bool], state: inout BalancerState) -> Int? {
        var best: Int?
        var total = 0
        for server in servers where available[server] {
            state.currentWeight[server] += weights[server]
            total += weights[server]
            if best == nil || state.currentWeight[server] > state.currentWeight[best!] { best = server }
        }
        guard let best else { return nil }
        state.currentWeight[best] -= total
        return best
    }
}
