import Foundation
import Testing
import TestSupport

@testable import Gateway

/// loadtest/run end to end against the real stack: its report agrees with the gateway's own
/// counters, and a chaos run that kills a replica's API server costs no read.
@Suite(.timeLimit(.minutes(4)), .serialized)
struct LoadTestKitTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let gatewayYAML = """
        identity: [header:authorization, ip]
        consistency: { mode: lsn, secret: load-test-secret-0123456789, lsn_header: X-DB-LSN }
        health: { path: /api/health/, interval: 300ms, timeout: 250ms, rise: 2, fall: 2, database_interval: 200ms }
        routes:
          - { name: auth, match: { path: /api/auth/** }, to: primary }
          - match: { path: "/api/subscriptions/{user}", methods: [GET, HEAD] }
            cache: { ttl: 1h }
          - match: { path: "/api/users/{id}", methods: [GET, HEAD] }
            cache: { ttl: 5m }
        """

    /// Runs loadtest/run against the in-process gateway; returns its summary.json.
    static func run(_ scenario: String, stack: Stack, gateway: TestGateway, extra: [String]) async throws -> [String: Any] {
        let out = NSTemporaryDirectory() + "loadtest-report-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runProcessCapturing(root.appendingPathComponent("loadtest/run").path, [
            scenario, "--gateway", "http://127.0.0.1:\(gateway.proxyPort)", "--admin", "http://127.0.0.1:\(gateway.adminPort)",
            "--stack-state", stack.stateDirectory, "--region-header", "X-Region", "--out", out,
        ] + extra)
        #expect(result.status == 0, "loadtest/run: \(result.output) \(result.errors)")
        print(result.output)
        for chart in ["report.md", "throughput_latency.png", "status_codes.png", "routing_cache.png"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + chart), "\(chart) missing")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// A counter's total over all its label sets, from /metrics.
    static func total(_ metrics: String, _ name: String, matching: String = "") -> Int {
        metrics.split(separator: "\n").filter { $0.hasPrefix(name + "{") && (matching.isEmpty || $0.contains(matching)) }
            .reduce(0) { $0 + (Int(Double($1.split(separator: " ").last ?? "0") ?? 0)) }
    }

    @Test func theReportAgreesWithTheGatewaysCounters() async throws {
        try await withStackGateway(extraYAML: Self.gatewayYAML) { stack, gateway in
            let before = try await gateway.admin("/metrics").text
            let summary = try await Self.run("users", stack: stack, gateway: gateway, extra: ["--duration", "6", "--users", "4"])
            let after = try await gateway.admin("/metrics").text
            let requests = try #require(summary["requests"] as? Int)
            let counted = Self.total(after, "gateway_requests_total") - Self.total(before, "gateway_requests_total")
            #expect(requests > 100, "the scenario ran")
            #expect(requests == counted, "the clients made \(requests) requests, the gateway counted \(counted)")
            let gatewaySection = try #require(summary["gateway"] as? [String: Any])
            #expect(gatewaySection["requests"] as? Int == counted)
            let hits = Self.total(after, "gateway_cache_requests_total", matching: "hit") - Self.total(before, "gateway_cache_requests_total", matching: "hit")
            let clientCache = try #require(summary["client_cache"] as? [String: Int])
            #expect(clientCache["HIT"] == hits && hits > 0, "X-Cache: HIT seen \(clientCache["HIT"] ?? -1), gateway hits \(hits)")
            #expect((gatewaySection["cache"] as? [String: Int])?["hit"] == hits)
            #expect(summary["failed"] as? Int == 0)
            #expect(summary["consistency_violations"] as? Int == 0, "\(summary["violations"] ?? "")")
        }
    }

    @Test func aDistributedRunWithTwoLocustWorkersAgreesWithTheGateway() async throws {
        try await withStackGateway(extraYAML: Self.gatewayYAML) { stack, gateway in
            let before = try await gateway.admin("/metrics").text
            let summary = try await Self.run("users", stack: stack, gateway: gateway,
                                             extra: ["--duration", "6", "--users", "4", "--workers", "2"])
            let after = try await gateway.admin("/metrics").text
            let requests = try #require(summary["requests"] as? Int)
            let counted = Self.total(after, "gateway_requests_total") - Self.total(before, "gateway_requests_total")
            // Both workers' records reached the master: every request the gateway counted.
            #expect(requests > 100 && requests == counted, "the workers made \(requests) requests, the gateway counted \(counted)")
            #expect(summary["failed"] as? Int == 0)
            #expect(summary["consistency_violations"] as? Int == 0, "\(summary["violations"] ?? "")")
            let regions = try #require(summary["reads_by_region"] as? [String: Int])
            #expect(!regions.isEmpty && regions.values.allSatisfy { $0 > 0 })
        }
    }

    @Test func killingAReplicasAPIServerCostsNoRead() async throws {
        try await withStackGateway(extraYAML: Self.gatewayYAML) { stack, gateway in
            let summary = try await Self.run("users", stack: stack, gateway: gateway,
                                             extra: ["--duration", "9", "--users", "4", "--chaos", "kill-replica-api"])
            #expect(summary["failed_reads"] as? Int == 0, "\(summary["errors"] ?? "")")
            #expect(summary["consistency_violations"] as? Int == 0, "\(summary["violations"] ?? "")")
            let chaos = try #require(summary["chaos"] as? [[String: Any]])
            #expect(chaos.map { $0["what"] as? String } == ["kill api-eu-west", "start api-eu-west"])
            let nodes = try #require(summary["served_by_node"] as? [String: Int])
            #expect((nodes["pg-eu-west"] ?? 0) > 0, "eu-west served reads before the kill: \(nodes)")
        }
    }
}
