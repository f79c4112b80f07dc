import Foundation
import Testing
import TestSupport

@testable import Gateway

/// Regional read/write routing against real upstreams that say who they are.
@Suite(.timeLimit(.minutes(2)))
struct RoutingIntegrationTests {
    /// A primary pool and three regional replica pools (eu-west has two servers).
    final class Fleet: @unchecked Sendable {
        let upstreams: [String: TestUpstream]
        let gateway: TestGateway

        init(extraYAML: String = "") async throws {
            var upstreams: [String: TestUpstream] = [:]
            for name in ["primary", "us-1", "eu-1", "eu-2", "ap-1"] {
                let upstream = TestUpstream(name: name)
                try await upstream.start()
                upstreams[name] = upstream
            }
            self.upstreams = upstreams
            gateway = try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                debug_headers: true
                trusted_proxies: [127.0.0.1/32]
                regions:
                  default: us-east
                  header: { name: CloudFront-Viewer-Country, map: { DE: eu-west, FR: eu-west, SG: ap-southeast, US: us-east } }
                  cidrs: { 127.0.0.2/32: eu-west, 127.0.0.3/32: ap-southeast }
                  fallback: { eu-west: [ap-southeast], ap-southeast: [eu-west] }
                cors:
                  web:
                    allow_origins: [https://app.example.com]
                    allow_methods: [GET, PUT]
                    allow_headers: [Content-Type]
                    expose_headers: [X-Request-Id]
                    allow_credentials: true
                    max_age: 10m
                routes:
                  - { name: auth, match: { path: /api/auth/** }, to: primary }
                  - { match: { path: /reports/** }, to: ap }
                  - { match: { path: /web/** }, cors: web }
                pools:
                  primary: { role: primary, region: us-east, servers: ["{{primary}}"] }
                  us: { role: replica, region: us-east, servers: ["{{us-1}}"] }
                  eu: { role: replica, region: eu-west, balancer: round_robin, servers: ["{{eu-1}}", "{{eu-2}}"] }
                  ap: { role: replica, region: ap-southeast, servers: ["{{ap-1}}"] }
                \(extraYAML)
                """, upstreams.mapValues(\.url))
        }

        func stop() async {
            await gateway.stop()
            for upstream in upstreams.values { await upstream.stop() }
        }

        /// The name of the upstream that served a request.
        func served(_ method: String, _ path: String = "/name", headers: [String] = [], from source: String? = nil) async throws -> String {
            let response = try await send(method, path, headers: headers, from: source)
            #expect(response.status == 200, "\(method) \(path): \(response.status) \(response.text)")
            return response.header("x-upstream") ?? "?"
        }

        func send(_ method: String, _ path: String, headers: [String] = [], from source: String? = nil) async throws -> TestResponse {
            try await RawClient.request(method, "http://127.0.0.1:\(gateway.proxyPort)\(path)", headers: headers,
                                        body: method == "GET" || method == "OPTIONS" ? nil : "{}", from: source)
        }

        func setState(_ pool: String, _ upstream: String, _ state: String) async throws {
            let client = try await RawClient.connect(port: gateway.adminPort)
            try await client.send("POST /admin/upstreams/\(pool)/127.0.0.1:\(upstreams[upstream]!.port)/\(state) HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 200, "\(response.text)")
            await client.close()
        }
    }

    func withFleet(_ body: (Fleet) async throws -> Void) async throws {
        let fleet = try await Fleet()
        do {
            try await body(fleet)
        } catch {
            await fleet.stop()
            throw error
        }
        await fleet.stop()
    }

    @Test func regionByTrustedHeaderReadsLocallyWritesToPrimary() async throws {
        try await withFleet { (fleet: Fleet) async throws in
            for (country, servers) in [("DE", ["eu-1", "eu-2"]), ("FR", ["eu-1", "eu-2"]), ("SG", ["ap-1"]), ("US", ["us-1"])] {
                let header = "CloudFront-Viewer-Country: \(country)"
                var seen: Set<String> = []
                for _ in 0..<4 { seen.insert(try await fleet.served("GET", headers: [header])) }
                #expect(seen == Set(servers), "\(country)")
                #expect(try await fleet.served("HEAD", headers: [header]) != "primary")
                for method in ["POST", "PUT", "PATCH", "DELETE"] {
                    #expect(try await fleet.served(method, headers: [header]) == "primary", "\(country) \(method)")
                }
            }
        }
    }

    @Test func regionBySourceAddressAndForgedHeadersIgnored() async throws {
        try await withFleet { (fleet: Fleet) async throws in
            #expect(["eu-1", "eu-2"].contains(try await fleet.served("GET", from: "127.0.0.2")))
            #expect(try await fleet.served("GET", from: "127.0.0.3") == "ap-1")
            #expect(try await fleet.served("POST", from: "127.0.0.3") == "primary")
            // 127.0.0.2 is not a trusted proxy: its region header changes nothing.
            #expect(["eu-1", "eu-2"].contains(try await fleet.served("GET", headers: ["CloudFront-Viewer-Country: SG"], from: "127.0.0.2")))
            // Unknown address, no header: the default region.
            #expect(try await fleet.served("GET", from: "127.0.0.9") == "us-1")
        }
    }

    @Test func routesForcePoolsAndTheUpstreamIsTold() async throws {
        try await withFleet { (fleet: Fleet) async throws in
            let de = ["CloudFront-Viewer-Country: DE"]
            #expect(try await fleet.served("GET", "/api/auth/session", headers: de) == "primary")
            #expect(try await fleet.served("POST", "/reports/daily", headers: de) == "ap-1")

            // The upstream learns where the request was routed; a client cannot claim it.
            _ = try await fleet.send("GET", "/echo", headers: de + ["X-Gateway-Target: primary", "X-Gateway-Region: us-east"])
            let eu = fleet.upstreams["eu-1"]!.stats.requests > 0 ? fleet.upstreams["eu-1"]! : fleet.upstreams["eu-2"]!
            #expect(eu.stats.lastHeaders["x-gateway-target"] == ["replica"])
            #expect(eu.stats.lastHeaders["x-gateway-region"] == ["eu-west"])
            _ = try await fleet.send("PUT", "/echo", headers: de)
            #expect(fleet.upstreams["primary"]!.stats.lastHeaders["x-gateway-target"] == ["primary"])
            #expect(fleet.upstreams["primary"]!.stats.lastHeaders["x-gateway-region"] == ["eu-west"])

            // Debug headers say how the gateway decided.
            let read = try await fleet.send("GET", "/name", headers: de)
            #expect(read.header("x-gateway-route") == "read")
            #expect(read.header("x-gateway-region") == "eu-west")
            #expect(read.header("x-gateway-pool") == "eu")
            let write = try await fleet.send("DELETE", "/name", headers: de)
            #expect(write.header("x-gateway-route") == "write")
            #expect(write.header("x-gateway-pool") == "primary")
        }
    }

    @Test func fallbackToTheNextRegionThenThePrimary() async throws {
        try await withFleet { (fleet: Fleet) async throws in
            let de = ["CloudFront-Viewer-Country: DE"]
            try await fleet.setState("eu", "eu-1", "maintenance")
            for _ in 0..<3 { #expect(try await fleet.served("GET", headers: de) == "eu-2") }
            try await fleet.setState("eu", "eu-2", "maintenance")
            #expect(try await fleet.served("GET", headers: de) == "ap-1")
            try await fleet.setState("ap", "ap-1", "maintenance")
            #expect(try await fleet.served("GET", headers: de) == "primary")
            // Back in service: eu-west serves eu-west again.
            try await fleet.setState("eu", "eu-1", "ready")
            #expect(try await fleet.served("GET", headers: de) == "eu-1")

            let upstreams = try await fleet.gateway.admin("/admin/upstreams")
            #expect(upstreams.text.contains("\"state\" : \"maintenance\""))
            // Nothing left at all: a quick 503 with Retry-After.
            try await fleet.setState("eu", "eu-1", "maintenance")
            try await fleet.setState("primary", "primary", "maintenance")
            let none = try await fleet.send("GET", "/name", headers: de)
            #expect(none.status == 503)
            #expect(none.header("retry-after") == "1")
        }
    }

    @Test func corsPreflightAndActualRequests() async throws {
        try await withFleet { (fleet: Fleet) async throws in
            let preflight = try await fleet.send("OPTIONS", "/web/profile", headers: [
                "Origin: https://app.example.com", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type",
            ])
            #expect(preflight.status == 204)
            #expect(preflight.header("access-control-allow-origin") == "https://app.example.com")
            #expect(preflight.header("access-control-allow-methods") == "GET, PUT")
            #expect(preflight.header("access-control-allow-credentials") == "true")
            #expect(preflight.header("access-control-max-age") == "600")
            // Answered by the gateway: no upstream saw it.
            #expect(fleet.upstreams.values.allSatisfy { $0.stats.requestsByPath["/web/profile"] == nil })

            let refused = try await fleet.send("OPTIONS", "/web/profile", headers: [
                "Origin: https://evil.example", "Access-Control-Request-Method: PUT",
            ])
            #expect(refused.status == 204)
            #expect(refused.header("access-control-allow-origin") == nil)

            let actual = try await fleet.send("GET", "/web/name", headers: ["Origin: https://app.example.com"])
            #expect(actual.header("access-control-allow-origin") == "https://app.example.com")
            #expect(actual.header("access-control-expose-headers") == "X-Request-Id")
            let other = try await fleet.send("GET", "/web/name", headers: ["Origin: https://evil.example"])
            #expect(other.status == 200)
            #expect(other.header("access-control-allow-origin") == nil)
            // Routes without a policy leave CORS to the upstream.
            #expect(try await fleet.send("GET", "/name", headers: ["Origin: https://app.example.com"]).header("access-control-allow-origin") == nil)
        }
    }
}
