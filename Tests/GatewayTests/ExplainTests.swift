import Foundation
import Testing
import TestSupport

@testable import Gateway

/// `GET /admin/explain` against the real routing of the same requests: the pool it names is
/// the pool that serves them (regions, routes, writes, servers in maintenance), the cache key
/// and entry are the ones the cache finds, and the bucket state predicts the next answer.
@Suite(.timeLimit(.minutes(2)))
struct ExplainTests {
    static func explain(_ gateway: TestGateway, _ query: String) async throws -> [String: Any] {
        let response = try await gateway.admin("/admin/explain?\(query)")
        #expect(response.status == 200, "\(query): \(response.status) \(response.text)")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    @Test func thePoolExplainNamesIsThePoolThatServes() async throws {
        let fleet = try await RoutingIntegrationTests.Fleet()
        do {
            // (query for explain, the same request for real)
            let cases: [(query: String, method: String, path: String, headers: [String], source: String?)] = [
                ("path=/name", "GET", "/name", [], nil),
                ("path=/name&header=CloudFront-Viewer-Country:DE", "GET", "/name", ["CloudFront-Viewer-Country: DE"], nil),
                ("path=/name&client=127.0.0.3", "GET", "/name", [], "127.0.0.3"),
                ("method=POST&path=/name", "POST", "/name", [], nil),
                ("path=/api/auth/session", "GET", "/api/auth/session", [], nil),
                ("path=/reports/q3", "GET", "/reports/q3", [], nil),
            ]
            func check() async throws {
                for c in cases {
                    let report = try await Self.explain(fleet.gateway, c.query)
                    let real = try await fleet.send(c.method, c.path, headers: c.headers, from: c.source)
                    #expect(report["pool"] as? String == real.header("x-gateway-pool"), "\(c.query): explain \(report["pool"] ?? "nil"), served by \(real.header("x-gateway-pool") ?? "?")")
                    #expect(report["read"] as? Bool == (c.method == "GET"))
                }
            }
            try await check()
            let germany = try await Self.explain(fleet.gateway, "path=/name&header=CloudFront-Viewer-Country:DE")
            #expect(germany["region"] as? String == "eu-west")
            let candidates = germany["candidates"] as? [[String: Any]] ?? []
            #expect(candidates.compactMap { $0["pool"] as? String } == ["eu", "ap", "primary"])
            #expect(candidates.first?["chosen"] as? Bool == true)
            let route = try await Self.explain(fleet.gateway, "path=/api/auth/session")["route"] as? [String: Any]
            #expect(route?["name"] as? String == "auth" && route?["to"] as? String == "primary")

            // Both eu servers in maintenance: explain says why eu is passed over, and the real
            // read goes where it says (the fallback region).
            try await fleet.setState("eu", "eu-1", "maintenance")
            try await fleet.setState("eu", "eu-2", "maintenance")
            let after = try await Self.explain(fleet.gateway, "path=/name&header=CloudFront-Viewer-Country:DE")
            let eu = (after["candidates"] as? [[String: Any]])?.first
            let servers = eu?["servers"] as? [[String: Any]] ?? []
            #expect(servers.count == 2 && servers.allSatisfy { $0["available"] as? Bool == false && $0["unavailable"] as? String == "maintenance" })
            #expect(eu?["chosen"] as? Bool == false)
            #expect(after["pool"] as? String == "ap")
            try await check()
        } catch {
            await fleet.stop()
            throw error
        }
        await fleet.stop()
    }

    @Test func cacheEntriesAndBucketsAreTheOnesRequestsMeet() async throws {
        let redis = try await RedisServer.start()
        let upstream = TestUpstream()
        try await upstream.start()
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            debug_headers: true
            redis: { url: "\(redis.url)" }
            rate_limits:
              policies:
                local: { limit: 2, period: 60s, key: "header:x-api-key", store: local }
                shared: { limit: 2, period: 60s, key: "header:x-api-key", store: redis }
            pools:
              primary: { role: primary, servers: ["\(upstream.url)"] }
            routes:
              - match: { path: "/items/{id}", methods: [GET, HEAD] }
                cache: { ttl: 60s, shared: true }
              - { match: { path: /local }, rate_limit: local }
              - { match: { path: /shared }, rate_limit: shared }
            """)
        do {
            // No entry yet; the real request stores one under the key explain names.
            let before = try await Self.explain(gateway, "path=/items/7&host=gateway.test")["cache"] as? [String: Any]
            #expect(before?["entry"] as? String == "none")
            let key = try #require(before?["key"] as? String)
            #expect(key.contains("/items/7"))
            #expect(try await gateway.request("GET", "/items/7").header("X-Cache") == "MISS")
            let stored = try await waitUntil(.seconds(5)) {
                try await Self.explain(gateway, "path=/items/7&host=gateway.test")["cache"].flatMap { ($0 as? [String: Any])?["entry"] as? String } == "fresh"
            }
            #expect(stored != nil)
            #expect(try await gateway.request("GET", "/items/7").header("X-Cache") == "HIT")
            // Found in Redis too: the stored key is the one explain names.
            #expect(try await redis.command("KEYS", "*").contains(key))

            // The bucket predicts the next answer, in process and in Redis.
            for path in ["local", "shared"] {
                let fresh = try await Self.explain(gateway, "path=/\(path)&header=X-Api-Key:k1")["rate_limit"] as? [String: Any]
                #expect(fresh?["policy"] as? String == path && fresh?["would_pass"] as? Bool == true && fresh?["remaining"] as? Int == 2)
                for _ in 0..<2 { #expect(try await gateway.request("GET", "/\(path)", headers: ["X-Api-Key: k1"]).status == 200) }
                let spent = try await Self.explain(gateway, "path=/\(path)&header=X-Api-Key:k1")["rate_limit"] as? [String: Any]
                #expect(spent?["would_pass"] as? Bool == false && spent?["remaining"] as? Int == 0, "\(path): \(spent ?? [:])")
                #expect((spent?["retry_after_seconds"] as? Double ?? 0) > 0)
                #expect(try await gateway.request("GET", "/\(path)", headers: ["X-Api-Key: k1"]).status == 429)
                // Another key's bucket is full, and explaining spent nothing.
                let other = try await Self.explain(gateway, "path=/\(path)&header=X-Api-Key:k2")["rate_limit"] as? [String: Any]
                #expect(other?["would_pass"] as? Bool == true && other?["remaining"] as? Int == 2)
            }
            #expect(try await gateway.request("GET", "/local", headers: ["X-Api-Key: k2"]).status == 200)

            // Mistakes in the query get a 400 that says what is wrong.
            for (query, message) in [("method=GET", "path=/... is required"), ("path=/x&verb=GET", "unknown parameter 'verb'"),
                                     ("path=/x&client=not-an-ip", "is not an IP address"), ("path=/x&header=NoColon", "header=Name:Value")] {
                let response = try await gateway.admin("/admin/explain?\(query)")
                #expect(response.status == 400 && response.text.contains(message), "\(query): \(response.status) \(response.text)")
            }
        } catch {
            await gateway.stop()
            await upstream.stop()
            await redis.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
        await redis.stop()
    }
}
