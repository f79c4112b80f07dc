import Cache
import Foundation
import HTTPWire
import NIOCore
import Redis
import Router

/// `GET /admin/explain?method=GET&path=/api/...&header=Name:Value&client=IP&host=H`: what the
/// gateway would do with that request now, without sending it. The request is parsed by the
/// data path's own parser and routed by the same `Router` calls as a real one (`route`, then
/// the candidate order under the live routing state), so the answer is the real routing's:
/// the route matched, read or write, the client's region, each candidate pool in order with its
/// servers and why any is passed over, the cache key and whether an entry exists, the rate-limit
/// policy and the bucket's state. No request is sent and nothing is counted or spent.
struct RouteExplain {
    let gateway: GatewayServer

    struct Report: Encodable {
        struct Request: Encodable {
            var method: String
            var path: String
            var host: String?
            var client: String
            var clientTrusted: Bool
            var headers: [String]
        }
        struct Route: Encodable {
            var index: Int
            var name: String?
            var path: String
            var methods: [String]?
            var to: String
        }
        struct Server: Encodable {
            var server: String
            var available: Bool
            /// maintenance | health_down | ejected (nil when available)
            var unavailable: String?
        }
        struct Candidate: Encodable {
            var pool: String?
            var role: String?
            /// Passed over before its servers are looked at: stale | takes_writes | not_replayed | no_write_pool
            var skipped: String?
            var servers: [Server]
            /// The first candidate with an available server: where the request goes.
            var chosen: Bool
        }
        struct Cache: Encodable {
            var key: String
            var variant: String
            var shared: Bool
            var ttlSeconds: Double?
            /// fresh | stale | none | bypass (a body, an upgrade, or no identity on a per-user
            /// route) | error (Redis did not answer)
            var entry: String
            var ageSeconds: Double?
            var store: String
        }
        struct RateLimit: Encodable {
            var policy: String
            var limit: Int
            var periodSeconds: Double
            var burst: Int
            var store: String
            var key: String
            var exempt: Bool
            /// What the next request would get (nil: exempt, or Redis did not answer).
            var wouldPass: Bool?
            var remaining: Int?
            var retryAfterSeconds: Double?
        }

        var request: Request
        var route: Route?
        var read: Bool
        var region: String
        var candidates: [Candidate]
        var pool: String?
        var noWritePool: Bool
        var auth: String
        var readYourWrites: String
        var cache: Cache?
        var rateLimit: RateLimit?
    }

    struct QueryError: Error { var message: String }

    /// The explained request's parts from the query string.
    static func parseQuery(_ uri: String) throws -> (method: String, path: String, host: String?, client: String, headers: [String]) {
        let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        var method = "GET", path: String?, host: String?, client = "127.0.0.1", headers: [String] = []
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let name = String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") : ""
            switch name {
            case "method": method = value.uppercased()
            case "path": path = value
            case "host": host = value
            case "client": client = value
            case "header":
                guard let colon = value.firstIndex(of: ":"), colon != value.startIndex else {
                    throw QueryError(message: "header=Name:Value, got '\(value)'")
                }
                headers.append(String(value[..<colon]) + ": " + value[value.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            default:
                throw QueryError(message: "unknown parameter '\(name)'; use method, path, host, header, client")
            }
        }
        guard let path, path.hasPrefix("/") else { throw QueryError(message: "path=/... is required") }
        guard method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }), !method.isEmpty else {
            throw QueryError(message: "method=\(method) is not a method")
        }
        return (method, path, host, client, headers)
    }

    func explain(uri: String, generation: GatewayServer.Generation, routing: RoutingState, snapshot: GatewaySnapshot,
                 inputs: RoutingControl.Inputs) async -> AdminResponse {
        let query: (method: String, path: String, host: String?, client: String, headers: [String])
        do {
            query = try Self.parseQuery(uri)
        } catch let error as QueryError {
            return .error(.badRequest, error.message)
        } catch {
            return .error(.badRequest, "\(error)")
        }
        guard let peer = IPAddress(query.client) else { return .error(.badRequest, "client=\(query.client) is not an IP address") }
        // The data path's own parser makes the head, as it would of the real request.
        var text = "\(query.method) \(query.path) HTTP/1.1\r\nHost: \(query.host ?? "gateway.explain")\r\n"
        for header in query.headers { text += header + "\r\n" }
        var parser = HTTP1Parser(kind: .request)
        parser.append(ByteBuffer(string: text + "\r\n"))
        guard case .head(let head)? = try? parser.next() else {
            return .error(.badRequest, "the request does not parse as HTTP/1.1")
        }
        let runtime = generation.runtime
        let router = runtime.router
        let trusted = runtime.trustedProxies.contains(peer)
        let client = Exchange.client(of: head, peer: peer, trusted: trusted, runtime: runtime) ?? peer
        let path = Exchange.routedPath(head.path, runtime: runtime)
        var decision = router.route(
            Router.Request(method: head.method, path: path, host: head.host, client: client, headerTrusted: trusted), headers: head)

        // Each loop routes by the published state less the servers it ejected.
        var state = routing
        for server in runtime.servers where snapshot.upstreams[server.id].ejectedOnLoops > 0 {
            state.serverAvailable[server.id] = false
        }
        var balancer = BalancerState(servers: runtime.servers.count)
        router.pick(&decision, state: state, balancer: &balancer)
        let checked = generation.config.health.path != nil
        let candidates = router.candidateOrder(of: decision, state: state).map { slot -> Report.Candidate in
            let (pool, skipped): (Int?, String?) = switch slot {
            case .pool(let pool): (pool, nil)
            case .skipped(let pool, let reason): (pool, reason.rawValue)
            }
            let servers = pool.map { router.pools[$0].servers } ?? []
            return Report.Candidate(
                pool: pool.map { router.pools[$0].name }, role: pool.map { router.pools[$0].role == .primary ? "primary" : "replica" },
                skipped: skipped,
                servers: servers.map { id in
                    let why: String? = if state.serverAvailable[id] { nil }
                        else if inputs.maintenance.contains(id) { "maintenance" }
                        else if checked && inputs.healthDown.contains(id) { "health_down" }
                        else if snapshot.upstreams[id].ejectedOnLoops > 0 { "ejected" }
                        else { "unavailable" }
                    return Report.Server(server: runtime.servers[id].authority, available: state.serverAvailable[id], unavailable: why)
                },
                chosen: pool != nil && pool == decision.pool)
        }
        let route = decision.route.map { index -> Report.Route in
            let config = generation.config.routes[index]
            return Report.Route(index: index, name: config.name, path: config.path.description, methods: config.methods, to: config.to)
        }
        let clientText = client.description
        let identity = runtime.identity.identity(of: head, client: clientText, token: nil)
        var report = Report(
            request: .init(method: query.method, path: query.path, host: head.host, client: peer.description, clientTrusted: trusted,
                           headers: query.headers),
            route: route, read: decision.isRead, region: router.regions.names[decision.region], candidates: candidates,
            pool: decision.pool.map { router.pools[$0].name }, noWritePool: decision.noWritePool,
            auth: runtime.auth.map { "\($0.mode(forRoute: decision.route))" } ?? "none",
            readYourWrites: runtime.consistency.enabled
                ? "a token in the request is not read here: reads are routed as if the client had written nothing" : "off")

        if let cache = runtime.cache, let policy = decision.route.flatMap({ cache.policies[$0] }),
           head.method == .get || head.method == .head {
            report.cache = await cacheReport(cache: cache, policy: policy, head: head, path: path, decision: decision,
                                             identity: identity, router: router)
        }
        if let limits = runtime.rateLimits, let position = limits.policy(forRoute: decision.route) {
            report.rateLimit = await rateLimitReport(limits: limits, policy: limits.policies[position], head: head, client: client,
                                                     clientText: clientText, identity: identity)
        }
        return .json(report)
    }

    /// `command` with the Redis client of `box`'s loop, run on that loop.
    private func onRedis<T: Sendable>(_ box: NIOLoopBoundBox<LoopContext>,
                                      _ command: @escaping @Sendable (RedisLoopClient) -> EventLoopFuture<T>) async throws -> T {
        try await box.eventLoop.flatSubmit {
            guard let redis = box.value.current.redis else { return box.eventLoop.makeFailedFuture(QueryError(message: "no Redis")) }
            return command(redis)
        }.get()
    }

    private func cacheReport(cache: CacheRuntime, policy: ResponseCachePolicy, head: HTTPHead, path: NormalizedPath,
                             decision: Router.Decision, identity: String?, router: Router) async -> Report.Cache {
        let key = ResponseCacheFilter.key(policy, head: head, path: path, decision: decision, router: router)
        let store = cache.store.usesRedis ? "redis" : "local"
        var report = Report.Cache(key: key, variant: policy.shared ? "-" : identity ?? "-", shared: policy.shared,
                                  ttlSeconds: policy.ttlMilliseconds.map { Double($0) / 1000 }, entry: "none", store: store)
        guard policy.shared || identity != nil else {
            report.entry = "bypass"
            return report
        }
        let now = CacheRuntime.unixMilliseconds()
        var entry = cache.store.lookupLocal(key, variant: report.variant, now: now)
        if entry == nil, cache.store.usesRedis, let box = gateway.contexts.ordered.first {
            let variant = report.variant
            do {
                entry = try await onRedis(box) { cache.store.lookupRedis(key, variant: variant, client: $0, now: now) }
            } catch {
                report.entry = "error"
                return report
            }
        }
        if let entry {
            report.entry = now < entry.freshUntil ? "fresh" : "stale"
            report.ageSeconds = Double(now - entry.storedAt) / 1000 + Double(entry.initialAge)
        }
        return report
    }

    private func rateLimitReport(limits: RateLimitRuntime, policy: RateLimitRuntime.Policy, head: HTTPHead, client: IPAddress,
                                 clientText: String, identity: String?) async -> Report.RateLimit {
        let text = limits.keyText(policy, head: head, identity: { identity })
        let address = RateLimitRuntime.grouped(client, prefix: policy.ipv6Prefix)
        let redisKey = RateLimitRuntime.redisKey(policy, text: text, address: address, clientText: clientText)
        var report = Report.RateLimit(
            policy: policy.name, limit: policy.rule.limit, periodSeconds: Double(policy.rule.periodMicroseconds) / 1_000_000,
            burst: policy.rule.burst, store: policy.usesRedis ? "redis" : "local", key: redisKey, exempt: limits.allow.contains(client))
        guard !report.exempt else { return report }
        let now = RateLimitFilter.microsecondsNow()
        var outcome: GCRA.Outcome?
        if policy.usesRedis, let box = gateway.contexts.ordered.first {
            let reply = try? await onRedis(box) { $0.send(RedisCommand(key: "GET", .string(redisKey))) }
            if let reply {
                // The stored theoretical arrival time (µs on Redis's clock), nil when the bucket is full.
                let tat = reply.bytes.flatMap { Int64(String(buffer: $0)) }
                outcome = policy.rule.check(tat: tat.flatMap { $0 > now ? $0 : nil }, now: now, cost: policy.cost)
            }
        } else {
            outcome = limits.local.peek(RateLimitRuntime.localKey(policy, text: text, address: address), rule: policy.rule, now: now,
                                        cost: policy.cost)
        }
        if let outcome {
            report.wouldPass = outcome.allowed
            report.remaining = outcome.allowed ? outcome.remaining + policy.cost : outcome.remaining
            report.retryAfterSeconds = outcome.allowed ? nil : Double(outcome.retryAfterMicroseconds) / 1_000_000
        }
        return report
    }
}
