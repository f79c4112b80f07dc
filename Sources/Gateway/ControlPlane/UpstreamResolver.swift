import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Router

/// Keeps the host names of `pools:` resolved: looks each up again every `resolve` (its pool's,
/// else `dns.resolve`; sooner when the record's TTL is shorter) on a thread pool, and when an
/// answer changes hands every address to the gateway, which rebuilds its servers: an address
/// that stays keeps its server (connections, health, ejections), a new one becomes a server, a
/// gone one retires like a server a reload removed. A failed lookup keeps the last good answer.
final class UpstreamResolver: Sendable {
    struct HostState: Sendable {
        var answer: DNSResolver.Answer
        var nextLookup: NIODeadline
        var failing = false
    }

    private let state = NIOLockedValueBox<[String: HostState]>([:])
    private let threadPool = NIOThreadPool(numberOfThreads: 2)
    private let metrics: GatewayMetrics
    private let logger: Logger

    init(metrics: GatewayMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
        threadPool.start()
    }

    /// The names of `config`'s servers (IP addresses need no lookup), each with how often it is
    /// looked up again (the shortest of the pools that use it).
    static func names(in config: GatewayConfig) -> [String: ConfigDuration] {
        var names: [String: ConfigDuration] = [:]
        for pool in config.pools {
            for server in pool.servers where IPAddress(server.url.host) == nil {
                let interval = pool.resolve ?? config.dns.resolve
                names[server.url.host] = min(names[server.url.host] ?? interval, interval)
            }
        }
        return names
    }

    /// The answers the gateway started with.
    func seed(_ answers: [String: DNSResolver.Answer], config: GatewayConfig) {
        let names = Self.names(in: config)
        state.withLockedValue { hosts in
            for (name, answer) in answers { hosts[name] = HostState(answer: answer, nextLookup: Self.next(names[name] ?? config.dns.resolve, answer)) }
        }
    }

    /// The answers in use.
    var answers: [String: DNSResolver.Answer] { state.withLockedValue { $0.mapValues(\.answer) } }

    /// The answers `config` needs: names already known keep theirs (the periodic lookups keep
    /// them current), new ones are looked up now. Throws, naming the host, when one cannot be.
    func answers(for config: GatewayConfig) async throws -> [String: DNSResolver.Answer] {
        let names = Self.names(in: config)
        let known = state.withLockedValue { $0 }
        var answers: [String: DNSResolver.Answer] = [:]
        for (name, interval) in names {
            if let host = known[name] {
                answers[name] = host.answer
                continue
            }
            let answer: DNSResolver.Answer
            do {
                answer = try await threadPool.runIfActive { try Self.lookUp(name, config) }
            } catch {
                metrics.countEvent("gateway_dns_lookups_total", [("result", "error")])
                throw error
            }
            metrics.countEvent("gateway_dns_lookups_total", [("result", "ok")])
            answers[name] = answer
            state.withLockedValue { $0[name] = HostState(answer: answer, nextLookup: Self.next(interval, answer)) }
        }
        state.withLockedValue { hosts in hosts = hosts.filter { names[$0.key] != nil } }
        return answers
    }

    /// Looks names up again as they fall due, until cancelled; calls `changed` with every
    /// answer after one of them changed.
    func run(config: @escaping @Sendable () -> GatewayConfig, changed: @escaping @Sendable ([String: DNSResolver.Answer]) async -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            let current = config()
            let names = Self.names(in: current)
            let now = NIODeadline.now()
            let due = state.withLockedValue { hosts in hosts.filter { names[$0.key] != nil && $0.value.nextLookup <= now } }
            guard !due.isEmpty else { continue }
            var anyChanged = false
            for (name, host) in due.sorted(by: { $0.key < $1.key }) {
                let interval = names[name]!
                let resolver = current.dns.resolver
                do {
                    let answer = try await threadPool.runIfActive { try resolver.lookup(name) }
                    metrics.countEvent("gateway_dns_lookups_total", [("result", "ok")])
                    if answer.addresses != host.answer.addresses {
                        anyChanged = true
                        metrics.countEvent("gateway_dns_changes_total", [("host", name)])
                        logger.notice("upstream host addresses changed", metadata: [
                            "host": "\(name)", "from": "\(host.answer.addresses.joined(separator: ","))",
                            "to": "\(answer.addresses.joined(separator: ","))", "ttl": "\(answer.ttlSeconds.map(String.init) ?? "-")",
                        ])
                    }
                    if host.failing {
                        logger.notice("DNS lookups work again", metadata: ["host": "\(name)"])
                    }
                    state.withLockedValue { $0[name] = HostState(answer: answer, nextLookup: Self.next(interval, answer)) }
                } catch {
                    metrics.countEvent("gateway_dns_lookups_total", [("result", "error")])
                    if !host.failing {
                        logger.warning("DNS lookup failed; the last addresses stay in use", metadata: [
                            "host": "\(name)", "error": "\(error)", "addresses": "\(host.answer.addresses.joined(separator: ","))",
                        ])
                    }
                    // Tried again soon, and at most every `interval`.
                    let retry = NIODeadline.now() + .nanoseconds(min(interval.nanoseconds, 5_000_000_000))
                    state.withLockedValue { hosts in
                        hosts[name]?.failing = true
                        hosts[name]?.nextLookup = retry
                    }
                }
            }
            if anyChanged { await changed(answers) }
        }
    }

    func shutdown() async {
        try? await threadPool.shutdownGracefully()
    }

    /// When a name is looked up again: after `interval`, or its TTL if shorter (at least 1 s).
    private static func next(_ interval: ConfigDuration, _ answer: DNSResolver.Answer) -> NIODeadline {
        var nanoseconds = interval.nanoseconds
        if let ttl = answer.ttlSeconds { nanoseconds = min(nanoseconds, max(1, Int64(ttl)) * 1_000_000_000) }
        return .now() + .nanoseconds(nanoseconds)
    }

    /// Start-up: every name looked up before the gateway starts (blocking this thread; no event
    /// loop runs yet). A name that cannot be resolved is a configuration error.
    static func lookUpAll(_ config: GatewayConfig) throws -> [String: DNSResolver.Answer] {
        var answers: [String: DNSResolver.Answer] = [:]
        for name in names(in: config).keys.sorted() {
            answers[name] = try lookUp(name, config)
        }
        return answers
    }

    /// One lookup of a name the configuration needs; failing, it is a configuration error.
    private static func lookUp(_ name: String, _ config: GatewayConfig) throws -> DNSResolver.Answer {
        do {
            return try config.dns.resolver.lookup(name)
        } catch {
            throw ConfigError(file: "", key: "pools", message: "\(error)")
        }
    }
}
