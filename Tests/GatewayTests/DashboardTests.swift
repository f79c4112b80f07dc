import Foundation
import Testing
import TestSupport

@testable import Gateway

/// The admin dashboard in headless Chromium (Debian's chromium, over the DevTools protocol):
/// with the stack up it shows every pool, server and database as `/admin/upstreams` does, and
/// the open page follows a server put in maintenance and a replica whose replay is paused. A
/// screenshot goes to `.build/dashboard.png`.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct DashboardTests {
    static let screenshot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/dashboard.png").path

    /// JavaScript: resolves with `element`'s text once `condition` (over `text`) holds, polling
    /// every 200 ms for up to 15 s (the page refreshes itself every 2 s).
    static func waitFor(_ selector: String, _ condition: String) -> String {
        """
        new Promise((resolve, reject) => { const start = Date.now(); (function check() {
          const element = document.querySelector(\(json(selector))); const text = element ? element.innerText : "";
          if (element && (\(condition))) resolve(text);
          else if (Date.now() - start > 15000) reject(new Error("timed out waiting for " + \(json(selector)) + ": " + text));
          else setTimeout(check, 200); })(); })
        """
    }

    static func json(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text]), as: UTF8.self).dropFirst().dropLast().description
    }

    @Test func theDashboardShowsTheStackAndFollowsIt() async throws {
        try await withStackGateway(regions: ["us-east", "eu-west"], extraYAML: FailoverTests.health) { stack, gateway in
            let browser = try HeadlessBrowser()
            defer { browser.close() }
            #expect(try browser.send("open http://127.0.0.1:\(gateway.adminPort)/") as? Int == 200)
            // Some traffic for the tiles; then two refreshes, so rates exist.
            for _ in 0..<20 { _ = try await gateway.send("GET", "/api/subscriptions/\(FailoverTests.user)", region: "eu-west") }
            _ = try browser.text(of: Self.waitFor("body", "Number(document.body.dataset.refreshes) >= 3"))

            // Every pool, server and database, with the state the admin API gives.
            let report = try await gateway.upstreamsReport()
            for upstream in report["upstreams"] as? [[String: Any]] ?? [] {
                let pool = upstream["pool"] as? String ?? "", server = upstream["server"] as? String ?? ""
                let row = try browser.text(of: Self.waitFor("tr[data-pool=\"\(pool)\"][data-server=\"\(server)\"]", "true"))
                #expect(row.contains("\(pool)\t\(server)\tready\tup\tyes"), "\(pool) \(server): \(row)")
            }
            for database in report["databases"] as? [[String: Any]] ?? [] {
                let name = database["name"] as? String ?? ""
                let row = try browser.text(of: Self.waitFor("tr[data-database=\"\(name)\"]", "true"))
                #expect(row.hasPrefix("\(name)\tyes\t\(database["role"] as? String ?? "?")"), "\(name): \(row)")
                #expect(row.contains("\tfresh\t"), "\(name): \(row)")
            }
            #expect(try browser.text(of: "document.getElementById('write-pool').innerText").contains("writes go to pool primary"))
            let requests = try browser.text(of: "document.getElementById('rps').innerText")
            #expect(requests != "–" && Double(requests) != nil, "requests/s: \(requests)")
            try browser.send("screenshot \(Self.screenshot)")

            // A server put in maintenance and a replica's replay paused under writes: the open
            // page shows both on its own refreshes.
            let upstreams = report["upstreams"] as? [[String: Any]] ?? []
            let target = try #require(upstreams.first { $0["pool"] as? String == "eu-west" })
            let server = target["server"] as? String ?? ""
            #expect(try await gateway.admin("/admin/upstreams/eu-west/\(server)/maintenance", method: "POST").status == 200)
            try await stack.pauseReplay("eu-west")
            let writer = Task {
                var plan = 0
                while !Task.isCancelled {
                    plan += 1
                    _ = try? await gateway.send("PATCH", "/api/subscriptions/\(FailoverTests.user)", body: "{\"plan\":\"d\(plan)\"}")
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { writer.cancel() }
            let maintenance = try browser.text(of: Self.waitFor("tr[data-pool=\"eu-west\"][data-server=\"\(server)\"]",
                                                                "text.includes('maintenance') && text.includes('\\tno\\t')"))
            #expect(maintenance.contains("maintenance"))
            let stale = try browser.text(of: Self.waitFor("tr[data-database=\"eu-west\"]", "text.includes('stale')"))
            #expect(stale.contains("replica") && stale.contains("stale"))
            writer.cancel()
            await writer.value
            try await stack.resumeReplay("eu-west")
            try browser.send("screenshot \(Self.screenshot.replacingOccurrences(of: ".png", with: "-maintenance.png"))")
            print("dashboard screenshots: \(Self.screenshot)")
        }
    }

    @Test func theAdminTokenGuardsThePageAndTheBrowserCanGiveIt() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            admin_token: dashboard-secret
            pools:
              primary: { role: primary, servers: ["\(upstream.url)"] }
            """)
        do {
            let refused = try await gateway.admin("/")
            #expect(refused.status == 401 && refused.header("www-authenticate")?.hasPrefix("Basic realm=") == true)
            let page = try await gateway.admin("/", token: "dashboard-secret")
            #expect(page.status == 200 && page.header("content-type")?.hasPrefix("text/html") == true)
            #expect(page.header("content-security-policy")?.contains("default-src 'none'") == true)
            let browser = try HeadlessBrowser()
            defer { browser.close() }
            #expect(try browser.send("open http://127.0.0.1:\(gateway.adminPort)/") as? Int == 401)
            // The token as a Basic password (what a browser's prompt sends) opens the page, and
            // its refreshes carry it too.
            let basic = Data("admin:dashboard-secret".utf8).base64EncodedString()
            try browser.send("header Authorization: Basic \(basic)")
            #expect(try browser.send("open http://127.0.0.1:\(gateway.adminPort)/") as? Int == 200)
            let row = try browser.text(of: Self.waitFor("tr[data-pool=\"primary\"]", "true"))
            #expect(row.contains("127.0.0.1:\(upstream.port)"))
            #expect(try browser.text(of: "document.getElementById('error').innerText").isEmpty)
            let wrong = Data("admin:wrong".utf8).base64EncodedString()
            #expect(try await RawClient.request("GET", "http://127.0.0.1:\(gateway.adminPort)/health", headers: ["Authorization: Basic \(wrong)"]).status == 401)
        } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }
}
