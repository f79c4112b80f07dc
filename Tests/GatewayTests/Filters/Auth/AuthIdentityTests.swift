import Foundation
import Testing
import TestSupport

@testable import Gateway

/// A verified claim as the identity: cache entries, read-your-writes and limits follow the user
/// across token refreshes, never mix two users, and plan-aware limits give each plan its limit.
@Suite(.timeLimit(.minutes(3)))
struct AuthIdentityTests {
    static let secret = "node-backend-JWT_SECRET-shared-by-the-web-and-mobile-apis"

    /// A primary and a replica upstream, and a gateway with `auth.default: optional`, identity
    /// `[jwt:sub, ip]` and `extra`.
    static func with(_ extra: String, _ body: (TestGateway, JWTTools) async throws -> Void) async throws {
        let primary = TestUpstream(name: "primary")
        let replica = TestUpstream(name: "replica")
        try await primary.start()
        try await replica.start()
        let tools = try JWTTools.make()
        defer { tools.remove() }
        let gateway: TestGateway
        do {
            gateway = try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                event_loops: 2
                debug_headers: true
                identity: [jwt:sub, ip]
                auth:
                  default: optional
                  issuers:
                    node: { hs256_secret: "\(secret)" }
                \(extra)
                pools:
                  primary: { role: primary, region: local, servers: ["\(primary.url)"] }
                  replica: { role: replica, region: local, servers: ["\(replica.url)"] }
                """)
        } catch {
            await primary.stop()
            await replica.stop()
            throw error
        }
        do { try await body(gateway, tools) } catch {
            await gateway.stop()
            await primary.stop()
            await replica.stop()
            throw error
        }
        await gateway.stop()
        await primary.stop()
        await replica.stop()
    }

    /// Two different tokens for alice (refreshed: another iat and exp), one for bob, one for a pro and a free user.
    static func tokens(_ tools: JWTTools) async throws -> (alice1: String, alice2: String, bob: String) {
        let tokens = try await tools.sign([
            .init(claims: ["sub": "alice", "plan": "free"], relative: ["exp": 3600, "iat": 0], secret: secret),
            .init(claims: ["sub": "alice", "plan": "free"], relative: ["exp": 7200, "iat": 5], secret: secret),
            .init(claims: ["sub": "bob", "plan": "free"], relative: ["exp": 3600, "iat": 0], secret: secret),
        ])
        #expect(tokens[0] != tokens[1])
        return (tokens[0], tokens[1], tokens[2])
    }

    static func get(_ gateway: TestGateway, _ path: String, _ token: String) async throws -> TestResponse {
        try await gateway.request("GET", path, headers: ["Authorization: Bearer \(token)"])
    }

    @Test func cacheEntriesAndReadYourWritesFollowTheUserAcrossTokens() async throws {
        try await Self.with("""
            consistency: { mode: time, secret: 0123456789abcdef0123, sticky_for: 30s, token_ttl: 60s }
            routes:
              - { match: { path: /profile, methods: [GET] }, cache: { ttl: 1m } }
            """) { gateway, tools in
            let (alice1, alice2, bob) = try await Self.tokens(tools)
            #expect(try await Self.get(gateway, "/profile", alice1).header("X-Cache") == "MISS")
            // A refreshed token is the same user: alice's entry.
            #expect(try await Self.get(gateway, "/profile", alice2).header("X-Cache") == "HIT")
            // Bob never gets alice's entry.
            #expect(try await Self.get(gateway, "/profile", bob).header("X-Cache") == "MISS")
            #expect(try await Self.get(gateway, "/profile", bob).header("X-Cache") == "HIT")
            // Anonymous callers (a forged token is anonymous on an optional route) get neither.
            let forged = String(alice1.dropLast(3)) + "AAA"
            #expect(try await Self.get(gateway, "/profile", forged).header("X-Cache") == "MISS")

            // Read-your-writes without cookies: alice writes with one token, reads with the other.
            let write = try await gateway.request("POST", "/name", headers: ["Authorization: Bearer \(alice1)"], body: "{}")
            #expect(write.header("X-Upstream-Name") == "primary")
            let read = try await Self.get(gateway, "/name", alice2)
            #expect(read.header("X-Upstream-Name") == "primary" && read.header("X-Gateway-Consistency") == "primary-pinned")
            // Bob's reads are not held back by alice's write.
            let other = try await Self.get(gateway, "/name", bob)
            #expect(other.header("X-Upstream-Name") == "replica" && other.header("X-Gateway-Consistency") == nil)
        }
    }

    @Test func aRefreshedTokenDoesNotResetTheUsersBucket() async throws {
        try await Self.with("""
            rate_limits:
              default: api
              policies:
                api: { limit: 4, period: 1h, key: identity }
            """) { gateway, tools in
            let (alice1, alice2, bob) = try await Self.tokens(tools)
            for _ in 0..<3 { #expect(try await Self.get(gateway, "/x", alice1).status == 200) }
            // Logging in again does not give a fresh budget: one left, then 429.
            #expect(try await Self.get(gateway, "/x", alice2).status == 200)
            let limited = try await Self.get(gateway, "/x", alice2)
            #expect(limited.status == 429 && limited.header("RateLimit")?.contains("r=0") == true)
            #expect(try await Self.get(gateway, "/x", alice1).status == 429)
            // Bob has his own bucket.
            #expect(try await Self.get(gateway, "/x", bob).status == 200)
        }
    }

    @Test func eachPlanGetsItsLimitExactly() async throws {
        try await Self.with("""
            rate_limits:
              default: api
              policies:
                api: { limit: 3, period: 1h, key: identity, by_claim: plan, limits: { pro: 6, team: 10 } }
            """) { gateway, tools in
            let tokens = try await tools.sign([
                .init(claims: ["sub": "free-user", "plan": "free"], secret: Self.secret),
                .init(claims: ["sub": "pro-user", "plan": "pro"], secret: Self.secret),
                .init(claims: ["sub": "no-plan-user"], secret: Self.secret),
            ])
            for (token, limit, policy) in [(tokens[0], 3, "\"api\";q=3"), (tokens[1], 6, "\"api.pro\";q=6"), (tokens[2], 3, "\"api\";q=3")] {
                for attempt in 0..<limit {
                    let response = try await Self.get(gateway, "/x", token)
                    #expect(response.status == 200, "request \(attempt + 1) of \(limit)")
                    #expect(response.header("RateLimit-Policy")?.hasPrefix(policy) == true, "\(response.header("RateLimit-Policy") ?? "none")")
                }
                let over = try await Self.get(gateway, "/x", token)
                #expect(over.status == 429 && over.header("RateLimit-Policy")?.hasPrefix(policy) == true, "\(policy)")
            }
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_rate_limit_requests_total{policy=\"api.pro\",result=\"allowed\"} 6\n"))
            #expect(metrics.contains("gateway_rate_limit_requests_total{policy=\"api\",result=\"limited\"} 2\n"))
        }
    }
}
