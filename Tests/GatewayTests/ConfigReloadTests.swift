import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport
@testable import Gateway

/// Live reload against real upstreams and real connections: `POST /admin/reload` under load,
/// an invalid file in between, requests in flight across a reload, listeners opened and closed.
@Suite(.serialized) struct ConfigReloadTests {
    /// Two configurations that differ in routes (`/name` goes to another pool), pools (B has
    /// `extra` and drops `api-2`), a rate limit and a cache TTL. `api-1` is in both, unchanged.
    static func config(_ variant: String, proxy: Int, admin: Int, api1: Int, api2: Int, extra: Int, second: Int? = nil,
                       eventLoops: Int? = nil, extraYAML: String = "") -> String {
        let b = variant == "b"
        var listen = "listen: 127.0.0.1:\(proxy)"
        if let second { listen = "listen: [127.0.0.1:\(proxy), 127.0.0.1:\(second)]" }
        return """
            \(listen)
            admin: 127.0.0.1:\(admin)
            debug_headers: true
            \(eventLoops.map { "event_loops: \($0)" } ?? "")
            upstream: { idle_timeout: 60s, max_connections: 2 }
            pools:
              api: { servers: [\(b ? "\"http://127.0.0.1:\(api1)\"" : "\"http://127.0.0.1:\(api1)\", \"http://127.0.0.1:\(api2)\"")] }
            \(b ? "  extra: { servers: [\"http://127.0.0.1:\(extra)\"] }" : "")
            rate_limits:
              default: per_client
              policies:
                per_client: { limit: \(b ? 90_000 : 100_000), period: 1s }
            routes:
              - { match: { path: /echo }, to: api, cache: { ttl: \(b ? "60s" : "30s") } }
              - { match: { path: /name }, to: \(b ? "extra" : "api") }
              - { match: { path: "/delay/**" }, to: \(b ? "extra" : "api") }
            \(extraYAML)
            """
    }

    /// A write every fifth request, a cached read every fifth, `/name` otherwise.
    static func mix(_ count: Int) -> (method: String, path: String, body: String) {
        count % 5 == 0 ? ("POST", "/echo", "{\"n\":\(count)}") : count % 5 == 1 ? ("GET", "/echo", "") : ("GET", "/name", "")
    }

    static func upstreams(_ gateway: TestGateway) async throws -> [String: [String: Any]] {
        let reply = try await gateway.admin("/admin/upstreams")
        let json = try JSONSerialization.jsonObject(with: Data(reply.body)) as! [String: Any]
        var byServer: [String: [String: Any]] = [:]
        for entry in json["upstreams"] as! [[String: Any]] {
            byServer["\(entry["pool"]!)/\(entry["server"]!)"] = entry
        }
        return byServer
    }

    static func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func twentyReloadsUnderLoadLoseNoRequest() async throws {
        let api1 = TestUpstream(name: "api-1"), api2 = TestUpstream(name: "api-2"), extra = TestUpstream(name: "extra")
        let ports = (try await api1.start(), try await api2.start(), try await extra.start())
        let proxy = try freePort(), admin = try freePort()
        func config(_ variant: String) -> String {
            Self.config(variant, proxy: proxy, admin: admin, api1: ports.0, api2: ports.1, extra: ports.2)
        }
        let file = NSTemporaryDirectory() + "reload-\(UUID().uuidString).yaml"
        try Self.write(config("a"), to: file)
        let gateway = try await TestGateway.start(path: file)

        // Warm up: enough concurrent requests that every loop's pool to api-1 holds its one
        // connection (max_connections 2 over 2 loops).
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<20 { _ = try? await gateway.request("POST", "/echo", body: "{}") }
                }
            }
        }
        let openedBefore = try await Self.upstreams(gateway)["api/127.0.0.1:\(ports.0)"]?["connections_opened_total"] as? Int
        let api2OpenedBefore = api2.stats.connections

        let load = LoadWorkers(port: proxy, keepAlive: 6, newConnection: 2, request: Self.mix)
        let clock = ContinuousClock()
        try await Task.sleep(for: .milliseconds(200))
        /// Per reload: when it was asked for, when the reply came, and the variant in force after.
        var reloads: [(sent: ContinuousClock.Instant, done: ContinuousClock.Instant, variant: String)] = []
        var invalidReply: TestResponse?
        for index in 0..<20 {
            if index == 10 {
                // An invalid file in between: refused with file, line and key; nothing changes.
                try Self.write(config("a").replacingOccurrences(of: "period: 1s", with: "period: soon"), to: file)
                let sent = clock.now
                invalidReply = try await gateway.admin("/admin/reload", method: "POST")
                reloads.append((sent, clock.now, reloads.last!.variant))
                try await Task.sleep(for: .milliseconds(60))
            }
            let variant = index % 2 == 0 ? "b" : "a"
            try Self.write(config(variant), to: file)
            let sent = clock.now
            let reply = try await gateway.admin("/admin/reload", method: "POST")
            #expect(reply.status == 200, "\(String(decoding: reply.body, as: UTF8.self))")
            reloads.append((sent, clock.now, variant))
            try await Task.sleep(for: .milliseconds(60))
        }
        try await Task.sleep(for: .milliseconds(200))
        let all = await load.stop()
        let failed = all.filter { $0.status != 200 }
        #expect(all.count > 500, "the load ran: \(all.count) requests")
        #expect(failed.isEmpty, "failed: \(failed.count) of \(all.count), e.g. \(failed.prefix(3))")
        #expect(all.contains { $0.path == "/echo" && $0.status == 200 } && all.contains { $0.path == "/name" && $0.pool == "extra" })

        // Each request is served by the configuration in force when it started: for requests
        // with no reload between their start and end, /name went to that configuration's pool.
        var checked = 0, wrong: [LoadWorkers.Sample] = []
        for sample in all where sample.path == "/name" && sample.status == 200 {
            let before = reloads.last { $0.done <= sample.start }
            let overlapping = reloads.contains { $0.sent <= sample.end && $0.done >= sample.start }
            guard !overlapping else { continue }
            let variant = before?.variant ?? "a"
            checked += 1
            if sample.pool != (variant == "b" ? "extra" : "api") { wrong.append(sample) }
        }
        #expect(checked > 100, "requests clear of any reload: \(checked)")
        let reloadMilliseconds = reloads.map { Double(($0.done - $0.sent).components.attoseconds) / 1e15 + Double(($0.done - $0.sent).components.seconds) * 1000 }
        print("reloads under load: \(all.count) requests, \(failed.count) failed, \(checked) checked against their configuration;",
              "reload reply ms: median \(reloadMilliseconds.sorted()[reloadMilliseconds.count / 2]), max \(reloadMilliseconds.max() ?? 0)")
        #expect(wrong.isEmpty, "served by the wrong configuration: \(wrong.count), e.g. \(wrong.prefix(3))")

        // The invalid file: 422 naming the file, the line and the key; the count and /health say so.
        let invalid = invalidReply.map { String(decoding: $0.body, as: UTF8.self) } ?? ""
        #expect(invalidReply?.status == 422)
        #expect(invalid.contains("\(file):12:") && invalid.contains("rate_limits.policies.per_client.period"), "\(invalid)")
        let metrics = String(decoding: try await gateway.admin("/metrics").body, as: UTF8.self)
        #expect(metrics.contains("gateway_config_reloads_total{result=\"ok\"} 20"), "\(metrics)")
        #expect(metrics.contains("gateway_config_reloads_total{result=\"error\"} 1"))
        let health = String(decoding: try await gateway.admin("/health").body, as: UTF8.self)
        #expect(health.contains("\"last_reload\"") && health.contains("\"result\" : \"ok\"") && health.contains("\"servers_kept\""), "\(health)")

        // api-1 is in both configurations, unchanged: its pooled connections carried over every
        // reload. api-2 left and came back ten times: each return opened new connections.
        let openedAfter = try await Self.upstreams(gateway)["api/127.0.0.1:\(ports.0)"]?["connections_opened_total"] as? Int
        #expect(openedBefore != nil && openedBefore == openedAfter, "api-1 connections opened: \(String(describing: openedBefore)) → \(String(describing: openedAfter))")
        #expect(api2.stats.connections >= api2OpenedBefore + 5, "api-2: \(api2OpenedBefore) → \(api2.stats.connections)")

        await gateway.stop()
        for upstream in [api1, api2, extra] { await upstream.stop() }
        try? FileManager.default.removeItem(atPath: file)
    }

    /// A slow request started before a reload that sends its route elsewhere and removes its
    /// server still completes, from the old pool; the next one goes where the new file says. The
    /// reload opens the listener it adds and closes the one it removes, and names what needs a
    /// restart.
    @Test func aRequestInFlightFinishesOnTheConfigurationItStartedWith() async throws {
        let api1 = TestUpstream(name: "api-1"), api2 = TestUpstream(name: "api-2"), extra = TestUpstream(name: "extra")
        let ports = (try await api1.start(), try await api2.start(), try await extra.start())
        let proxy = try freePort(), admin = try freePort(), second = try freePort()
        let file = NSTemporaryDirectory() + "reload-\(UUID().uuidString).yaml"
        try Self.write(Self.config("a", proxy: proxy, admin: admin, api1: ports.0, api2: ports.1, extra: ports.2), to: file)
        let gateway = try await TestGateway.start(path: file)

        // api-1 in maintenance: both slow requests go to api-2, which the reload removes.
        #expect(try await gateway.admin("/admin/upstreams/api/127.0.0.1:\(ports.0)/maintenance", method: "POST").status == 200)
        let slow = (try await gateway.client(), try await gateway.client())
        try await slow.0.send("GET /delay/1200 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await slow.1.send("GET /delay/1200 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await Task.sleep(for: .milliseconds(300))
        #expect(api2.stats.requestsByPath["/delay/1200"] == 2)
        let api2Gauge = "gateway_upstream_available{pool=\"api\",server=\"127.0.0.1:\(ports.1)\"}"
        #expect(String(decoding: try await gateway.admin("/metrics").body, as: UTF8.self).contains(api2Gauge))

        try Self.write(Self.config("b", proxy: proxy, admin: admin, api1: ports.0, api2: ports.1, extra: ports.2, second: second,
                                   eventLoops: 7), to: file)
        let reply = try await gateway.admin("/admin/reload", method: "POST")
        let text = String(decoding: reply.body, as: UTF8.self)
        #expect(reply.status == 200, "\(text)")
        #expect(text.contains("\"restart_required\" : [\n    \"event_loops\"\n  ]"), "\(text)")
        #expect(text.contains("\"servers_kept\" : 1") && text.contains("\"servers_removed\" : 1") && text.contains("\"servers_added\" : 1"))
        #expect(text.contains("127.0.0.1:\(second)"), "\(text)")

        let next = try await gateway.request("GET", "/delay/10")
        #expect(next.status == 200 && next.header("X-Gateway-Pool") == "extra")
        for client in [slow.0, slow.1] {
            let response = try await client.readResponse()
            #expect(response.status == 200 && response.header("X-Gateway-Pool") == "api"
                        && response.header("X-Gateway-Server") == "127.0.0.1:\(ports.1)", "\(response.headers)")
            await client.close()
        }
        // A removed server's gauges go; the kept server kept its maintenance mark.
        #expect(!String(decoding: try await gateway.admin("/metrics").body, as: UTF8.self).contains(api2Gauge))
        let upstreams = try await Self.upstreams(gateway)
        #expect(upstreams["api/127.0.0.1:\(ports.0)"]?["state"] as? String == "maintenance", "\(upstreams)")
        // The added listener serves; the one a reload removes stops accepting.
        let viaSecond = try await RawClient.connect(port: second)
        try await viaSecond.send("GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try await viaSecond.readResponse().header("X-Upstream-Name") == "extra")
        await viaSecond.close()
        try Self.write(Self.config("a", proxy: proxy, admin: admin, api1: ports.0, api2: ports.1, extra: ports.2), to: file)
        #expect(try await gateway.admin("/admin/reload", method: "POST").status == 200)
        await #expect(throws: (any Error).self) { _ = try await RawClient.connect(port: second) }
        let name = try await gateway.request("GET", "/name")
        #expect(name.header("X-Gateway-Pool") == "api" && name.header("X-Upstream-Name") == "api-2", "api-1 is still in maintenance")

        await gateway.stop()
        for upstream in [api1, api2, extra] { await upstream.stop() }
        try? FileManager.default.removeItem(atPath: file)
    }

    /// `reload.watch`: the gateway notices the file changed and reloads by itself; a broken
    /// file is refused and counted, and fixing it is picked up too.
    @Test func watchingTheFileReloadsWhenItChanges() async throws {
        let api1 = TestUpstream(name: "api-1"), api2 = TestUpstream(name: "api-2"), extra = TestUpstream(name: "extra")
        let ports = (try await api1.start(), try await api2.start(), try await extra.start())
        let proxy = try freePort(), admin = try freePort()
        let watch = "reload: { watch: true, watch_interval: 100ms }"
        func config(_ variant: String) -> String {
            Self.config(variant, proxy: proxy, admin: admin, api1: ports.0, api2: ports.1, extra: ports.2, extraYAML: watch)
        }
        let file = NSTemporaryDirectory() + "reload-\(UUID().uuidString).yaml"
        try Self.write(config("a"), to: file)
        let gateway = try await TestGateway.start(path: file)
        #expect(try await gateway.request("GET", "/name").header("X-Gateway-Pool") == "api")

        try Self.write(config("b"), to: file)
        let switched = try await waitUntil(.seconds(5)) { try await gateway.request("GET", "/name").header("X-Gateway-Pool") == "extra" }
        #expect(switched != nil, "the changed file was not picked up")

        try Self.write(config("a").replacingOccurrences(of: "to: api", with: "to: nowhere"), to: file)
        let refused = try await waitUntil(.seconds(5)) {
            String(decoding: try await gateway.admin("/metrics").body, as: UTF8.self).contains("gateway_config_reloads_total{result=\"error\"} 1")
        }
        #expect(refused != nil, "the broken file was not reported")
        #expect(try await gateway.request("GET", "/name").header("X-Gateway-Pool") == "extra", "a broken file changed something")
        let health = String(decoding: try await gateway.admin("/health").body, as: UTF8.self)
        #expect(health.contains("routes[0].to") && health.contains("\"result\" : \"error\""), "\(health)")

        try Self.write(config("a"), to: file)
        let back = try await waitUntil(.seconds(5)) { try await gateway.request("GET", "/name").header("X-Gateway-Pool") == "api" }
        #expect(back != nil)

        await gateway.stop()
        for upstream in [api1, api2, extra] { await upstream.stop() }
        try? FileManager.default.removeItem(atPath: file)
    }

    /// What a reload keeps: the buckets of a rate-limit policy it did not change (a client
    /// cannot get a fresh budget from a reload) and the cache's entries; a policy it changed
    /// starts afresh.
    @Test func unchangedLimitsKeepTheirBucketsAndTheCacheItsEntries() async throws {
        let upstream = TestUpstream(name: "api")
        try await upstream.start()
        let proxy = try freePort(), admin = try freePort()
        func config(routeChange: Bool, otherLimit: Int) -> String {
            """
            listen: 127.0.0.1:\(proxy)
            admin: 127.0.0.1:\(admin)
            debug_headers: true
            pools:
              api: { servers: ["\(upstream.url)"] }
            rate_limits:
              policies:
                strict: { limit: 3, period: 1m }
                other: { limit: \(otherLimit), period: 1m }
            routes:
              - { match: { path: /echo }, to: api, cache: { ttl: 60s } }
              - { match: { path: /name }, to: api, rate_limit: strict }
              - { match: { path: /status/204 }, to: api, rate_limit: other }
            \(routeChange ? "  - { match: { path: \"/delay/**\" }, to: api }" : "")
            """
        }
        let file = NSTemporaryDirectory() + "reload-\(UUID().uuidString).yaml"
        try Self.write(config(routeChange: false, otherLimit: 2), to: file)
        let gateway = try await TestGateway.start(path: file)
        for _ in 0..<3 { #expect(try await gateway.request("GET", "/name").status == 200) }
        for _ in 0..<2 { #expect(try await gateway.request("GET", "/status/204").status == 204) }
        #expect(try await gateway.request("GET", "/echo").header("X-Cache") == "MISS")
        #expect(try await gateway.request("GET", "/echo").header("X-Cache") == "HIT")

        // Routes change, `strict` does not, `other` does (limit 2 → 5).
        try Self.write(config(routeChange: true, otherLimit: 5), to: file)
        #expect(try await gateway.admin("/admin/reload", method: "POST").status == 200)
        #expect(try await gateway.request("GET", "/name").status == 429, "the unchanged policy's bucket was reset by the reload")
        #expect(try await gateway.request("GET", "/status/204").status == 204, "the changed policy kept the old limit")
        #expect(try await gateway.request("GET", "/echo").header("X-Cache") == "HIT", "the cache lost its entry")
        #expect(upstream.stats.requestsByPath["/echo"] == 1)

        await gateway.stop()
        await upstream.stop()
        try? FileManager.default.removeItem(atPath: file)
    }
}
