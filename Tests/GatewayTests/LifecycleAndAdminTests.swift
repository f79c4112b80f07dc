import Foundation
import Testing
import TestSupport

@testable import Gateway

@Suite(.timeLimit(.minutes(2)))
struct LifecycleAndAdminTests {
    @Test func gracefulDrainLetsInFlightRequestsFinish() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            timeouts: { drain: 5s }
            pools:
              primary: { servers: ["{{UPSTREAM}}"] }
            """, ["UPSTREAM": upstream.url])
        let busy = try await gateway.client()
        let idle = try await gateway.client()
        try await busy.send("GET /delay/700 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))
        let stopping = Task { await gateway.stop() }
        // New connections are refused once shutdown began (soon after, on a busy machine).
        var refused = false
        for _ in 0..<100 where !refused {
            do {
                let late = try await RawClient.connect(port: gateway.proxyPort)
                await late.close()
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                refused = true
            }
        }
        #expect(refused)
        // The idle keep-alive connection is closed at once.
        #expect(await idle.waitForClose(timeout: .seconds(2)))
        // The in-flight request completes, told that the connection ends.
        let response = try await busy.readResponse(timeout: .seconds(5))
        #expect(response.status == 200)
        #expect(response.text == "{\"delayed_ms\":700}")
        #expect(await busy.waitForClose())
        await stopping.value
        await upstream.stop()
    }

    @Test func drainTimeoutClosesWhatIsLeft() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            timeouts: { drain: 300ms }
            pools:
              primary: { servers: ["{{UPSTREAM}}"] }
            """, ["UPSTREAM": upstream.url])
        let busy = try await gateway.client()
        try await busy.send("GET /delay/5000 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        await gateway.stop()
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(await busy.waitForClose(timeout: .seconds(2)))
        await upstream.stop()
    }

    @Test func adminEndpoints() async throws {
        try await withGateway { gateway, upstream in
            _ = try await gateway.request("GET", "/name")
            let health = try await gateway.admin("/health")
            #expect(health.status == 200)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(health.body)) as? [String: Any])
            #expect(object["status"] as? String == "ok")
            #expect(object["version"] as? String == GatewayServer.version)
            #expect(object["uptime_seconds"] is Double || object["uptime_seconds"] is Int)
            let libraries = try #require(object["libraries"] as? [String: String])
            #expect(libraries["libpq"]?.hasPrefix("15.") == true)
            #expect(libraries["hiredis"]?.split(separator: ".").count == 3)
            let pools = try #require(object["pools"] as? [[String: Any]])
            #expect(pools.first?["name"] as? String == "primary")
            #expect(pools.first?["servers"] as? [String] == ["127.0.0.1:\(upstream.port)"])

            let metrics = try await gateway.admin("/metrics")
            #expect(metrics.header("content-type")?.hasPrefix("text/plain") == true)
            #expect(metrics.text.contains("gateway_requests_total{pool=\"primary\",code=\"2xx\"} 1"))
            #expect(metrics.text.contains("gateway_request_duration_seconds_count{pool=\"primary\"} 1"))
            #expect(metrics.text.contains("gateway_upstream_connections{pool=\"primary\",server=\"127.0.0.1:\(upstream.port)\",state=\"idle\"} 1"))
            #expect(metrics.text.contains("gateway_client_connections"))

            let upstreams = try await gateway.admin("/admin/upstreams")
            let list = try #require((try JSONSerialization.jsonObject(with: Data(upstreams.body)) as? [String: Any])?["upstreams"] as? [[String: Any]])
            #expect(list.first?["server"] as? String == "127.0.0.1:\(upstream.port)")
            #expect(list.first?["connections_idle"] as? Int == 1)

            #expect(try await gateway.admin("/nope").status == 404)
        }
    }

    @Test func adminTokenIsRequiredWhenSet() async throws {
        try await withGateway("admin_token: s3cret") { gateway, _ in
            let missing = try await gateway.admin("/health")
            let wrong = try await gateway.admin("/health", token: "wrong")
            let right = try await gateway.admin("/health", token: "s3cret")
            #expect(missing.status == 401)
            #expect(wrong.status == 401)
            #expect(right.status == 200)
        }
    }
}
