import Foundation
import Redis
import Testing
import TestSupport

@testable import Gateway

/// Rate limits through the gateway, in process and in a real redis-server.
@Suite(.timeLimit(.minutes(3)))
struct RateLimitIntegrationTests {
    enum Store: String, CaseIterable, CustomTestStringConvertible {
        case local, redis
        var testDescription: String { rawValue }
    }

    /// Redis commands may take 2 s here: on a loaded test machine a timeout would make the
    /// limiter fall back to its local bucket and let more through than the exact counts expect.
    static func gateway(upstream: TestUpstream, redis: String?, limit: Int = 50, trusted: Bool = false,
                        extra: String = "") async throws -> TestGateway {
        try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 2
            \(trusted ? "trusted_proxies: [127.0.0.1/32]" : "")
            \(redis.map { "redis: { url: \"\($0)\", timeout: 2s }" } ?? "")
            rate_limits:
              default: api
              allow: [10.99.0.0/16]
              policies:
                api: { limit: \(limit), period: 1h }
                login: { limit: 3, period: 1m, key: "header:X-Api-Key" }
            \(extra)
            routes:
              - { match: { path: /api/auth/** }, rate_limit: login }
              - { match: { path: /free/** }, rate_limit: none }
            pools:
              primary: { role: primary, servers: ["{{upstream}}"] }
            """, ["upstream": upstream.url])
    }

    /// An upstream, a redis-server when asked, and gateways made by `make`; all stopped after.
    static func with(_ store: Store, _ body: (TestUpstream, RedisServer?) async throws -> Void) async throws {
        let upstream = TestUpstream(name: "api")
        try await upstream.start()
        let redis = store == .redis ? try await RedisServer.start() : nil
        do { try await body(upstream, redis) } catch {
            await upstream.stop()
            await redis?.stop()
            throw error
        }
        await upstream.stop()
        await redis?.stop()
    }

    static func run(_ gateway: TestGateway, _ body: () async throws -> Void) async throws {
        do { try await body() } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    static func concurrently(_ count: Int, _ gateway: TestGateway, _ target: String, headers: [String] = []) async throws -> [TestResponse] {
        try await withThrowingTaskGroup(of: TestResponse.self) { group in
            for _ in 0..<count { group.addTask { try await gateway.request("GET", target, headers: headers) } }
            var all: [TestResponse] = []
            for try await response in group { all.append(response) }
            return all
        }
    }

    @Test(arguments: Store.allCases) func twoHundredAtOnceFromOneAddressGetTheLimit(store: Store) async throws {
        try await Self.with(store) { upstream, redis in
            let gateway = try await Self.gateway(upstream: upstream, redis: redis?.url)
            try await Self.run(gateway) {
                let responses = try await Self.concurrently(200, gateway, "/name")
                let passed = responses.filter { $0.status == 200 }
                let limited = responses.filter { $0.status == 429 }
                #expect(passed.count == 50 && limited.count == 150, "\(passed.count) passed")
                #expect(upstream.stats.requests == 50)
                let refusal = try #require(limited.first)
                #expect(refusal.text.contains("\"error\":\"rate limit exceeded\"") && refusal.text.contains("request_id"))
                let retryAfter = try #require(refusal.header("Retry-After").flatMap(Int.init))
                #expect(retryAfter >= 1 && retryAfter <= 72, "one request back every 72 s")
                #expect(refusal.header("RateLimit-Policy") == "\"api\";q=50;w=3600")
                #expect(refusal.header("RateLimit")?.hasPrefix("\"api\";r=0;t=") == true)
                let remaining = Set(passed.compactMap { $0.header("RateLimit") })
                #expect(remaining.contains { $0.hasPrefix("\"api\";r=0;") } && remaining.count == 50, "each allowed request saw its own count")
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_rate_limit_requests_total{policy=\"api\",result=\"allowed\"} 50"))
                #expect(metrics.contains("gateway_rate_limit_requests_total{policy=\"api\",result=\"limited\"} 150"))
                #expect(metrics.contains("gateway_rate_limit_fallbacks_total{policy=\"api\"} 0"))
                if store == .redis {
                    let keys = try await redis!.command("KEYS", "gw:rl:*")
                    #expect(keys.contains("gw:rl:api:127.0.0.1"))
                }
            }
        }
    }

    @Test func routesChooseTheirPolicyAndKey() async throws {
        try await Self.with(.local) { upstream, _ in
            let gateway = try await Self.gateway(upstream: upstream, redis: nil)
            try await Self.run(gateway) {
                var alice: [Int] = []
                for _ in 0..<5 { alice.append(try await gateway.request("POST", "/api/auth/login", headers: ["X-Api-Key: alice"], body: "{}").status) }
                #expect(alice == [200, 200, 200, 429, 429])
                // Another key has its own bucket.
                #expect(try await gateway.request("POST", "/api/auth/login", headers: ["X-Api-Key: bob"], body: "{}").status == 200)
                // Unlimited route: no headers, never refused.
                for _ in 0..<60 {
                    let free = try await gateway.request("GET", "/free/x")
                    #expect(free.status == 200 && free.header("RateLimit") == nil)
                }
                let login = try await gateway.request("POST", "/api/auth/login", headers: ["X-Api-Key: carol"], body: "{}")
                #expect(login.header("RateLimit-Policy") == "\"login\";q=3;w=60")
            }
        }
    }

    @Test func twoInstancesSharingRedisAllowTheLimitNotTwice() async throws {
        try await Self.with(.redis) { upstream, redis in
            let a = try await Self.gateway(upstream: upstream, redis: redis!.url)
            let b = try await Self.gateway(upstream: upstream, redis: redis!.url)
            try await Self.run(a) {
                try await Self.run(b) {
                    async let fromA = Self.concurrently(60, a, "/name")
                    async let fromB = Self.concurrently(60, b, "/name")
                    let all = try await fromA + fromB
                    #expect(all.filter { $0.status == 200 }.count == 50)
                    #expect(all.filter { $0.status == 429 }.count == 70)
                }
            }
        }
    }

    @Test func forgedForwardedForChangesNothingUnlessTheProxyIsTrusted() async throws {
        try await Self.with(.local) { upstream, _ in
            // Untrusted peer: every forged address lands in the peer's bucket.
            let untrusted = try await Self.gateway(upstream: upstream, redis: nil, limit: 5)
            try await Self.run(untrusted) {
                var passed = 0
                for i in 0..<10 where try await untrusted.request("GET", "/name", headers: ["X-Forwarded-For: 203.0.113.\(i)"]).status == 200 {
                    passed += 1
                }
                #expect(passed == 5)
            }
            let trusted = try await Self.gateway(upstream: upstream, redis: nil, limit: 5, trusted: true)
            try await Self.run(trusted) {
                // From a trusted proxy the forwarded address is the client: one bucket each.
                for i in 0..<10 {
                    #expect(try await trusted.request("GET", "/name", headers: ["X-Forwarded-For: 203.0.113.\(i)"]).status == 200)
                }
                // The rightmost untrusted address counts, not what the client put first.
                var spoofed = 0
                for i in 0..<8 where try await trusted.request("GET", "/name", headers: ["X-Forwarded-For: 198.51.100.\(i), 192.0.2.7"]).status == 200 {
                    spoofed += 1
                }
                #expect(spoofed == 5)
                // IPv6 addresses within one /64 share a bucket; another /64 has its own.
                var sameNet = 0
                for i in 1...8 where try await trusted.request("GET", "/name", headers: ["X-Forwarded-For: 2001:db8:1:2::\(i)"]).status == 200 {
                    sameNet += 1
                }
                #expect(sameNet == 5)
                #expect(try await trusted.request("GET", "/name", headers: ["X-Forwarded-For: 2001:db8:1:3::1"]).status == 200)
                // The allowlist is never limited.
                for _ in 0..<10 {
                    #expect(try await trusted.request("GET", "/name", headers: ["X-Forwarded-For: 10.99.3.4"]).status == 200)
                }
                // The access log names the same client the limiter used.
                #expect(trusted.accessLog.entries.contains { $0.metadata["client"] == "2001:db8:1:3::1" })
            }
        }
    }

    @Test func redisKilledUnderLoadLimitingGoesOnLocally() async throws {
        try await Self.with(.redis) { upstream, redis in
            let gateway = try await Self.gateway(upstream: upstream, redis: redis!.url, limit: 30,
                                                 extra: "")
            try await Self.run(gateway) {
                let before = try await Self.concurrently(20, gateway, "/name")
                #expect(before.allSatisfy { $0.status == 200 })
                await redis!.kill()
                let during = try await Self.concurrently(60, gateway, "/name")
                #expect(during.allSatisfy { $0.status == 200 || $0.status == 429 }, "Redis down never makes a 5xx")
                let passed = during.filter { $0.status == 200 }.count
                // The local fallback has its own full bucket of 30: limiting goes on.
                #expect(passed == 30, "\(passed) passed with Redis down")
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_rate_limit_fallbacks_total{policy=\"api\"} 60"))
            }
        }
    }

    @Test func badRateLimitConfigNamesTheKey() throws {
        func error(_ yaml: String) -> ConfigError? { configError(addingTo: "pools:\n  primary: { servers: [http://10.0.0.1:8000] }\n", yaml) }
        #expect(error("rate_limits:\n  policies:\n    api: { period: 1m }\n")?.key == "rate_limits.policies.api")
        #expect(error("rate_limits:\n  policies:\n    api: { limit: 0, period: 1m }\n")?.key == "rate_limits.policies.api.limit")
        #expect(error("rate_limits:\n  policies:\n    api: { limit: 5, period: 1m, key: cookie }\n")?.key == "rate_limits.policies.api.key")
        #expect(error("rate_limits:\n  default: nope\n  policies:\n    api: { limit: 5, period: 1m }\n")?.key == "rate_limits.default")
        #expect(error("rate_limits:\n  policies:\n    api: { limit: 5, period: 1m, store: redis }\n")?.key == "rate_limits.policies.api.store")
        #expect(error("rate_limits:\n  fallback_share: 2\n")?.key == "rate_limits.fallback_share")
        #expect(error("routes:\n  - { match: { path: /a }, rate_limit: nope }\n")?.key == "routes[0].rate_limit")
    }
}
