import Foundation
import Testing
import TestSupport

@testable import Gateway

/// WebSocket through the gateway with real peers on both sides (python3-websockets): the
/// upgrade is forwarded, the 101 tunnels both ways (text, binary, a 1 MiB message), either side
/// may close, idle tunnels are cut, routes can refuse upgrades, rate limits apply to the
/// upgrade, and a drain closes open sockets.
@Suite(.serialized, .timeLimit(.minutes(3))) struct WebSocketTests {
    static func withEcho(_ extraYAML: String = "", _ body: (TestGateway, WebSocketEchoServer) async throws -> Void) async throws {
        let echo = try await WebSocketEchoServer.start()
        do {
            let gateway = try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                event_loops: 1
                rate_limits:
                  policies: { one: { limit: 1, period: 1m, store: local } }
                pools:
                  primary: { role: primary, servers: ["\(echo.url)"] }
                routes:
                  - match: { path: /plain }
                    upgrade: false
                  - match: { path: /limited }
                    rate_limit: one
                \(extraYAML)
                """)
            do { try await body(gateway, echo) } catch {
                await gateway.stop()
                throw error
            }
            await gateway.stop()
        } catch {
            await echo.stop()
            throw error
        }
        await echo.stop()
    }

    @Test func messagesGoBothWaysAndTheTunnelIsLoggedWhenItCloses() async throws {
        try await Self.withEcho { gateway, echo in
            let run = try await echo.client("echo", "ws://127.0.0.1:\(gateway.proxyPort)/echo")
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("text hello\n"), "\(run.output)")
            #expect(run.output.contains("binary 000102ff\n"), "\(run.output)")
            #expect(run.output.contains("big True\n"), "\(run.output)")
            #expect(run.output.contains("closed 1000\n"), "\(run.output)")

            let closed = try await waitUntil(.seconds(5)) {
                gateway.accessLog.entries.contains { $0.metadata["path"] == "/echo" }
            }
            #expect(closed != nil, "no access log line for the tunnel")
            let line = try #require(gateway.accessLog.entries.last { $0.metadata["path"] == "/echo" })
            #expect(line.metadata["status"] == "101")
            // Both directions carried the 1 MiB message and the frames around it.
            #expect(Int("\(line.metadata["bytes_in"] ?? "0")") ?? 0 > 1_048_576, "\(line.metadata)")
            #expect(Int("\(line.metadata["bytes_out"] ?? "0")") ?? 0 > 1_048_576, "\(line.metadata)")
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_tunnels_total 1"), "\(metrics)")
            #expect(metrics.contains("gateway_tunnels_open 0"), "\(metrics)")
            #expect(metrics.contains("gateway_tunnel_bytes_total{direction=\"up\"}"))
        }
    }

    @Test func theServerClosingEndsTheTunnelWithItsCode() async throws {
        try await Self.withEcho { gateway, echo in
            let run = try await echo.client("server-closes", "ws://127.0.0.1:\(gateway.proxyPort)/close")
            #expect(run.output.contains("text last\n"), "\(run.output)")
            #expect(run.output.contains("closed 4000 server says bye\n"), "\(run.output)")
        }
    }

    @Test func theUpgradeIsForwardedWithTheGatewaysHeaders() async throws {
        try await Self.withEcho { gateway, echo in
            let run = try await echo.client("headers", "ws://127.0.0.1:\(gateway.proxyPort)/headers")
            #expect(run.output.contains("\"upgrade\": \"websocket\""), "\(run.output)")
            #expect(run.output.contains("\"connection\": \"upgrade\""), "\(run.output)")
            #expect(run.output.contains("\"x-forwarded-for\": \"127.0.0.1\""), "\(run.output)")
            #expect(run.output.contains("\"sec-websocket-key\""), "\(run.output)")
        }
    }

    @Test func routesMayRefuseUpgradesAndRateLimitsApply() async throws {
        try await Self.withEcho { gateway, echo in
            // Without Upgrade the WebSocket server answers an ordinary request: no switch.
            let plain = try await echo.client("echo", "ws://127.0.0.1:\(gateway.proxyPort)/plain")
            #expect(plain.output.hasPrefix("refused 426"), "\(plain.output)")
            let first = try await echo.client("echo", "ws://127.0.0.1:\(gateway.proxyPort)/limited")
            #expect(first.output.contains("text hello"), "\(first.output)")
            let second = try await echo.client("echo", "ws://127.0.0.1:\(gateway.proxyPort)/limited")
            #expect(second.output.hasPrefix("refused 429"), "\(second.output)")
        }
    }

    @Test func anIdleTunnelIsCut() async throws {
        try await Self.withEcho("timeouts: { tunnel: 500ms }") { gateway, echo in
            let run = try await echo.client("wait", "ws://127.0.0.1:\(gateway.proxyPort)/idle")
            #expect(run.output.contains("open\n"), "\(run.output)")
            let cut = run.output.split(separator: "\n").first { $0.hasPrefix("cut after ") }
            let seconds = cut.flatMap { Double($0.dropFirst("cut after ".count)) }
            #expect(seconds.map { $0 >= 0.4 && $0 < 3 } == true, "\(run.output)")
        }
    }

    @Test func aDrainClosesOpenSockets() async throws {
        let echo = try await WebSocketEchoServer.start()
        defer { Task { await echo.stop() } }
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 1
            timeouts: { drain: 1s }
            pools:
              primary: { role: primary, servers: ["\(echo.url)"] }
            """)
        let client = Task { try await echo.client("wait", "ws://127.0.0.1:\(gateway.proxyPort)/live") }
        let open = try await waitUntil(.seconds(10)) {
            (try await gateway.admin("/metrics").text).contains("gateway_tunnels_open 1")
        }
        #expect(open != nil, "the socket never opened")
        let started = ContinuousClock.now
        await gateway.stop()
        let stopped = ContinuousClock.now - started
        let run = try await client.value
        #expect(run.output.contains("cut after"), "\(run.output)")
        // drain (1 s) and a little: the open socket did not hold the shutdown for longer.
        #expect(stopped < .seconds(4), "shutdown took \(stopped)")
    }
}
