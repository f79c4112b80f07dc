import Foundation
import Testing
import TestSupport

@testable import Gateway

/// The monitoring kit against the real tools: every metric has HELP text and `promtool check
/// metrics` finds nothing on a live `/metrics`; the alert rules pass `promtool check rules` and
/// their unit tests; a real Prometheus scrapes a gateway, evaluates the rules (a failed reload
/// fires its alert) and answers every expression of the Grafana dashboard.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MonitoringTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static var monitoring: String { root.appendingPathComponent("config/monitoring").path }

    /// Metric families named anywhere in `Sources/` (string literals starting `gateway_` or
    /// `process_`), histogram series folded into their family.
    static func metricNamesInSources() throws -> Set<String> {
        var names: Set<String> = []
        let sources = root.appendingPathComponent("Sources").path
        let files = FileManager.default.enumerator(atPath: sources)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        let pattern = try Regex(#"(?:"|TYPE |\n)((?:gateway|process)_[a-z0-9_]+)"#)
        for file in files where !file.hasSuffix("MetricHelp.swift") {
            let text = try String(contentsOfFile: "\(sources)/\(file)", encoding: .utf8)
            for match in text.matches(of: pattern) {
                guard let name = match.output[1].substring.map(String.init) else { continue }
                var family = name
                for suffix in ["_bucket", "_sum", "_count"] where family.hasSuffix(suffix) { family = String(family.dropLast(suffix.count)) }
                names.insert(family)
            }
        }
        return names
    }

    @Test func everyMetricTheSourcesNameHasHelpText() throws {
        let names = try Self.metricNamesInSources()
        #expect(names.count > 60, "found only \(names.sorted())")
        let missing = names.subtracting(MetricHelp.texts.keys)
        #expect(missing.isEmpty, "no HELP text for \(missing.sorted())")
    }

    @Test func annotateAddsHelpOnlyWhereItIsMissing() {
        let text = "# TYPE gateway_requests_total counter\ngateway_requests_total 1\n# HELP gateway_event_loops Mine.\n# TYPE gateway_event_loops gauge\ngateway_event_loops 2\n# TYPE unknown_thing gauge\nunknown_thing 0\n"
        let annotated = String(decoding: MetricHelp.annotate(Array(text.utf8)), as: UTF8.self)
        #expect(annotated == "# HELP gateway_requests_total \(MetricHelp.texts["gateway_requests_total"]!)\n" + text)
    }

    @Test func processMetricsComeFromProcSelfStat() throws {
        // Fields from a real /proc/self/stat line (a command name with a space and a parenthesis).
        let stat = "4242 (gate way)) S 1 4242 4242 0 -1 4194560 2100 0 0 0 250 150 0 0 20 0 9 0 1000 1234567 2048 18446744073709551615"
        let sample = try #require(ProcessMetrics.parse(stat: stat, uptime: "110.00 200.00\n", now: 1_000_000, ticksPerSecond: 100, pageSize: 4096))
        #expect(sample.cpuSeconds == 4.0)  // (250 + 150) ticks
        #expect(sample.residentBytes == 2048 * 4096)
        #expect(sample.startTimeSeconds == 1_000_000 - 110 + 10)
        let live = try #require(ProcessMetrics.sample())
        #expect(live.cpuSeconds > 0 && live.residentBytes > 1_000_000 && live.openFileDescriptors > 0)
    }

    @Test func promtoolFindsNothingWrongWithALiveMetricsPage() async throws {
        let redis = try await RedisServer.start()
        let upstream = TestUpstream()
        try await upstream.start()
        do {
            let gateway = try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                redis: { url: "\(redis.url)" }
                consistency: { secret: "monitoring-test-secret-0123456789" }
                rate_limits:
                  policies:
                    tight: { limit: 1, period: 60s, key: ip, store: local }
                auth:
                  issuers:
                    backend: { hs256_secret: "monitoring-test-secret" }
                pools:
                  primary: { role: primary, servers: ["{{up}}"] }
                routes:
                  - match: { path: "/cached/{id}", methods: [GET] }
                    cache: { ttl: 60s, shared: true }
                  - match: { path: "/limited" }
                    rate_limit: tight
                  - match: { path: "/private/**" }
                    auth: required
                """, ["up": upstream.url])
            for target in ["/cached/1", "/cached/1", "/limited", "/limited", "/private/x", "/status/503", "/status/404"] {
                _ = try await gateway.request("GET", target)
            }
            let page = try await gateway.admin("/metrics").text
            await gateway.stop()
            for family in ["gateway_requests_total", "gateway_cache_requests_total", "gateway_rate_limit_requests_total",
                           "gateway_auth_requests_total", "gateway_redis_connected", "process_cpu_seconds_total", "gateway_event_loops"] {
                #expect(page.contains("# HELP \(family) "), "\(family) has no HELP line")
            }
            let check = try Shell.run("promtool check metrics", input: page)
            #expect(check.status == 0 && check.output.isEmpty, "promtool check metrics: \(check.output)")
        } catch {
            await upstream.stop()
            await redis.stop()
            throw error
        }
        await upstream.stop()
        await redis.stop()
    }

    @Test func theAlertRulesPassTheirUnitTests() throws {
        let check = try Shell.run("cd '\(Self.monitoring)' && promtool check rules gateway-alerts.yml")
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("SUCCESS: 16 rules found"), "\(check.output)")
        let test = try Shell.run("cd '\(Self.monitoring)' && promtool test rules gateway-alerts.test.yml", timeout: .seconds(60))
        #expect(test.status == 0 && test.output.contains("SUCCESS"), "\(test.output)")
        // Every alert of the file has a test that fires it.
        let rules = try String(contentsOfFile: "\(Self.monitoring)/gateway-alerts.yml", encoding: .utf8)
        let tests = try String(contentsOfFile: "\(Self.monitoring)/gateway-alerts.test.yml", encoding: .utf8)
        let alerts = rules.matches(of: try Regex(#"- alert: (\w+)"#)).compactMap { $0.output[1].substring.map(String.init) }
        #expect(alerts.count == 16)
        for alert in alerts {
            let firing = try Regex("alertname: \(alert)\\n\\s+exp_alerts:\\n\\s+- exp_labels")
            #expect(tests.contains(firing), "no test fires \(alert)")
        }
    }

    @Test func theDashboardNamesOnlyMetricsTheGatewayExports() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.monitoring)/grafana-dashboard.json"))
        let expressions = try Self.dashboardExpressions(data)
        #expect(expressions.count >= 30)
        let pattern = try Regex(#"\b((?:gateway|process)_[a-z0-9_]+)"#)
        for expression in expressions {
            for match in expression.matches(of: pattern) {
                var family = String(match.output[1].substring ?? "")
                for suffix in ["_bucket", "_sum", "_count"] where family.hasSuffix(suffix) { family = String(family.dropLast(suffix.count)) }
                #expect(MetricHelp.texts[family] != nil, "the dashboard's \(family) is not a metric of the gateway")
            }
        }
    }

    static func dashboardExpressions(_ data: Data) throws -> [String] {
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        return panels.flatMap { panel in (panel["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
    }

    @Test func prometheusScrapesTheGatewayAndEvaluatesTheRules() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let upstream = TestUpstream()
        try await upstream.start()
        let configPath = "\(directory)/gateway.yaml"
        let good = """
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            pools:
              primary: { role: primary, servers: ["\(upstream.url)"] }
            """
        try good.write(toFile: configPath, atomically: true, encoding: .utf8)
        let gateway = try await TestGateway.start(path: configPath)
        let port = try freePort()
        try """
            global: { scrape_interval: 1s, evaluation_interval: 1s }
            rule_files: ["\(Self.monitoring)/gateway-alerts.yml"]
            scrape_configs:
              - job_name: gateway
                static_configs: [{ targets: ["127.0.0.1:\(gateway.adminPort)"] }]
            """.write(toFile: "\(directory)/prometheus.yml", atomically: true, encoding: .utf8)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn"]
        prometheus.standardOutput = FileHandle.nullDevice
        prometheus.standardError = FileHandle.nullDevice
        try prometheus.run()
        defer {
            kill(prometheus.processIdentifier, SIGKILL)
            prometheus.waitUntilExit()
        }
        do {
            func query(_ path: String) async throws -> [String: Any]? {
                let response = try? await RawClient.request("GET", "http://127.0.0.1:\(port)\(path)")
                guard let response, response.status == 200 else { return nil }
                return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            }
            func queryValue(_ expression: String) async throws -> [[String: Any]]? {
                let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                let reply = try await query("/api/v1/query?query=\(encoded)")
                guard reply?["status"] as? String == "success" else { return nil }
                return (reply?["data"] as? [String: Any])?["result"] as? [[String: Any]]
            }
            for _ in 0..<20 { _ = try await gateway.request("GET", "/echo") }
            // The target is up and scraped.
            let scraped = try await waitUntil(.seconds(20)) {
                try await queryValue("gateway_requests_total{job=\"gateway\",code=\"2xx\"}")?.isEmpty == false
            }
            #expect(scraped != nil, "Prometheus never scraped the gateway")
            // Every rule is loaded and evaluates without error.
            let rulesLoaded = try await waitUntil(.seconds(10)) { () -> Bool in
                let groups = ((try await query("/api/v1/rules"))?["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? []
                let rules = groups.flatMap { $0["rules"] as? [[String: Any]] ?? [] }
                return rules.count == 16 && rules.allSatisfy { $0["health"] as? String == "ok" }
            }
            #expect(rulesLoaded != nil, "the rules did not all load and evaluate")
            // Every dashboard expression is valid PromQL here; the traffic panels have data.
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.monitoring)/grafana-dashboard.json"))
            for expression in try Self.dashboardExpressions(data) {
                let concrete = expression.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$instance", with: ".*")
                let result = try await queryValue(concrete)
                #expect(result != nil, "Prometheus refused the dashboard's \(concrete)")
            }
            // (a rate needs two scrapes)
            let requestsPanel = try await waitUntil(.seconds(10)) {
                try await queryValue("sum by (code) (rate(gateway_requests_total{instance=~\".*\"}[1m]))")?.isEmpty == false
            }
            #expect(requestsPanel != nil, "the requests panel stayed empty")

            // A failed reload (the file broken) fires GatewayConfigReloadFailed.
            try "pools: [not, a, map\n".write(toFile: configPath, atomically: true, encoding: .utf8)
            #expect(try await gateway.admin("/admin/reload", method: "POST").status == 422)
            let fired = try await waitUntil(.seconds(20)) { () -> Bool in
                let alerts = ((try await query("/api/v1/alerts"))?["data"] as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
                return alerts.contains { ($0["labels"] as? [String: String])?["alertname"] == "GatewayConfigReloadFailed" && $0["state"] as? String == "firing" }
            }
            #expect(fired != nil, "the failed reload's alert never fired")
            // Nothing else fires on this healthy gateway.
            let alerts = ((try await query("/api/v1/alerts"))?["data"] as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
            let names = Set(alerts.compactMap { ($0["labels"] as? [String: String])?["alertname"] })
            #expect(names == ["GatewayConfigReloadFailed"], "\(names)")
        } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }
}
