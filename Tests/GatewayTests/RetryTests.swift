import Foundation
import Testing
import TestSupport

@testable import Gateway

/// Which failed requests the gateway sends again, against real servers that count what they see.
@Suite(.timeLimit(.minutes(2)))
struct RetryTests {
    /// A pool of a server that resets every request and a good one, round robin so both are used.
    func withFlakyPool(
        extraYAML: String = "", outliers: String = "{ consecutive_errors: 0 }", loops: Int = 1,
        _ body: (TestGateway, TestUpstream, TestUpstream) async throws -> Void
    ) async throws {
        let flaky = TestUpstream(name: "flaky", resetEverything: true)
        let good = TestUpstream(name: "good")
        try await flaky.start()
        try await good.start()
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: \(loops)
            outlier_detection: \(outliers)
            pools:
              primary: { balancer: round_robin, servers: ["{{flaky}}", "{{good}}"] }
            \(extraYAML)
            """, ["flaky": flaky.url, "good": good.url])
        do {
            try await body(gateway, flaky, good)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
        await flaky.stop()
        await good.stop()
    }

    @Test func aPostThatReachedAnUpstreamIsNeverSentAgain() async throws {
        try await withFlakyPool { gateway, flaky, good in
            var failed = 0
            for i in 0..<8 {
                let response = try await gateway.request("POST", "/upload", body: "{\"n\":\(i)}")
                if response.status == 502 { failed += 1 } else { #expect(response.status == 200) }
            }
            // Each POST reached exactly one server, once: the reset ones were not replayed.
            #expect(flaky.stats.requests + good.stats.requests == 8)
            #expect(failed == flaky.stats.requests)
            #expect(failed >= 1)
        }
    }

    @Test func aGetResetBeforeAnyResponseByteIsRetried() async throws {
        try await withFlakyPool { gateway, flaky, good in
            for _ in 0..<8 {
                let response = try await gateway.request("GET", "/name")
                #expect(response.status == 200)
                #expect(response.text == "good")
            }
            #expect(good.stats.requests == 8)
            #expect(flaky.stats.requests >= 1)
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_retries_total{result=\"retried\",reason=\"upstream_reset\"} \(flaky.stats.requests)"))
        }
    }

    @Test func aRequestThatNeverReachedAnUpstreamMayGoElsewhereWhateverItsMethod() async throws {
        let good = TestUpstream(name: "good")
        try await good.start()
        let refusing = try RefusingPort()
        let deadPort = refusing.port
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            outlier_detection: { consecutive_errors: 0 }
            pools:
              primary: { balancer: round_robin, servers: ["http://127.0.0.1:\(deadPort)", "{{good}}"] }
            """, ["good": good.url])
        for i in 0..<6 {
            let response = try await gateway.request("POST", "/upload", body: "{\"n\":\(i)}")
            #expect(response.status == 200)
        }
        #expect(good.stats.requests == 6)
        await gateway.stop()
        await good.stop()
        withExtendedLifetime(refusing) {}
    }

    @Test func retriesCanBeTurnedOff() async throws {
        try await withFlakyPool(extraYAML: "retries: { attempts: 0 }") { gateway, flaky, _ in
            var failed = 0
            for _ in 0..<4 where try await gateway.request("GET", "/name").status == 502 { failed += 1 }
            #expect(failed == flaky.stats.requests && failed >= 1)
        }
    }

    @Test func consecutiveFailuresEjectAServer() async throws {
        try await withFlakyPool(outliers: "{ consecutive_errors: 2, base_ejection_time: 30s }") { gateway, flaky, good in
            for _ in 0..<10 {
                let response = try await gateway.request("GET", "/name")
                #expect(response.status == 200)
            }
            // Two failures in a row ejected the flaky server; after that it saw nothing.
            #expect(flaky.stats.requests == 2)
            #expect(good.stats.requests == 10)
            let report = try await gateway.upstreamsReport()
            let servers = report["upstreams"] as? [[String: Any]] ?? []
            #expect(servers.first { $0["server"] as? String == "127.0.0.1:\(flaky.port)" }?["ejected"] as? Bool == true)
            #expect(servers.first { $0["server"] as? String == "127.0.0.1:\(good.port)" }?["ejected"] as? Bool == false)
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_outlier_ejections_total{pool=\"primary\",server=\"127.0.0.1:\(flaky.port)\"} 1"))
        }
    }

    /// Two event loops, each request on a new connection (the loops take turns): the failures
    /// count together, and the ejection one loop decides holds on the other at once.
    @Test func anEjectionCountsAndHoldsAcrossEventLoops() async throws {
        try await withFlakyPool(outliers: "{ consecutive_errors: 3, base_ejection_time: 30s }", loops: 2) { gateway, flaky, good in
            for _ in 0..<16 {
                let response = try await gateway.request("GET", "/name")
                #expect(response.status == 200)
            }
            // Per loop, this took up to 3 failures on each of the two loops (6).
            #expect(flaky.stats.requests == 3)
            #expect(good.stats.requests == 16)
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_outlier_ejections_total{pool=\"primary\",server=\"127.0.0.1:\(flaky.port)\"} 1"))
        }
    }
}
