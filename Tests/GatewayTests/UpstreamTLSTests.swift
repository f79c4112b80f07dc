import Foundation
import Testing
import TestSupport

@testable import Gateway

/// `https://` upstreams against a real gunicorn terminating TLS itself (`--certfile`), with
/// certificates made by the `openssl` command line: verified with a CA file, refused with the
/// wrong CA or name, reached with `verify: false`, a client certificate for an upstream that
/// requires one, and health checks over the same TLS.
@Suite(.serialized, .timeLimit(.minutes(3))) struct UpstreamTLSTests {
    static let certificates: TestCertificates = {
        let certificates = try! TestCertificates()
        try! certificates.makeServer("upstream", dnsNames: ["api.internal", "localhost"])
        try! certificates.makeClient("gateway")
        return certificates
    }()

    static func gunicorn(_ extra: [String] = []) async throws -> GunicornApp {
        let c = certificates
        // gunicorn believes X-Forwarded-Proto from 127.0.0.1 by default; trusting nobody makes
        // the scheme it reports the one of its own socket.
        return try await GunicornApp.start(arguments: ["--certfile", c.certFile("upstream"), "--keyfile", c.keyFile("upstream"),
                                                       "--forwarded-allow-ips", "192.0.2.1"] + extra)
    }

    /// A gateway whose one pool is `server` with `tls`.
    static func withGateway(_ server: String, tls: String, health: String = "",
                            _ body: (TestGateway) async throws -> Void) async throws {
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 1
            \(health)
            pools:
              primary: { role: primary, servers: ["\(server)"], tls: \(tls) }
            """)
        do { try await body(gateway) } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test func verifiedAgainstACAFileWithTheSNIName() async throws {
        let upstream = try await Self.gunicorn()
        defer { Task { await upstream.stop() } }
        try await Self.withGateway(upstream.url, tls: "{ ca_file: \(Self.certificates.caFile), sni: api.internal }",
                                   health: "health: { path: /ready, interval: 300ms, timeout: 250ms, rise: 1, fall: 2 }") { gateway in
            for _ in 0..<3 {
                let response = try await gateway.request("GET", "/items")
                #expect(response.status == 200, "\(response.text)")
                #expect(response.text.contains("\"scheme\": \"https\""), "\(response.text)")
            }
            // Pooled like cleartext connections: four requests, one TLS connection.
            let write = try await gateway.request("PUT", "/items/1", body: "{}")
            #expect(write.status == 200)
            let servers = try await gateway.upstreamsReport()["upstreams"] as? [[String: Any]] ?? []
            #expect(servers.first?["connections_opened_total"] as? Int == 1, "\(servers)")
            // The health check speaks the same TLS: the server is up, not down for a failed handshake.
            let up = try await waitUntil(.seconds(5)) { try await gateway.serverHealth("primary") == "up" }
            #expect(up != nil, "the health check over TLS never passed")
        }
    }

    @Test func theWrongCAOrNameIsA502NamedUpstreamTLS() async throws {
        let upstream = try await Self.gunicorn()
        defer { Task { await upstream.stop() } }
        for tls in ["{ ca_file: \(Self.certificates.otherCAFile) }", "{ ca_file: \(Self.certificates.caFile), sni: other.internal }",
                    "{ sni: api.internal }"] {
            try await Self.withGateway(upstream.url, tls: tls) { gateway in
                let response = try await gateway.request("GET", "/items")
                #expect(response.status == 502, "\(tls): \(response.status) \(response.text)")
                #expect(response.text.contains("upstream TLS handshake failed"), "\(tls): \(response.text)")
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_errors_total{kind=\"upstream_tls\"}"), "\(tls)")
                // A failed handshake counts like a refused connect: the server may be out now.
                let again = try await gateway.request("GET", "/items")
                #expect(again.status == 502 || again.status == 503, "\(again.status)")
            }
        }
    }

    @Test func verifyFalseAcceptsAnyCertificateWithAWarning() async throws {
        let upstream = try await Self.gunicorn()
        defer { Task { await upstream.stop() } }
        try await Self.withGateway(upstream.url, tls: "{ verify: false }") { gateway in
            let response = try await gateway.request("GET", "/items")
            #expect(response.status == 200 && response.text.contains("\"scheme\": \"https\""), "\(response.text)")
        }
        let config = try ConfigLoader.parse(yaml: """
            pools:
              primary:
                servers: ["\(upstream.url)"]
                tls: { verify: false }
            """, file: "gw.yaml")
        #expect(config.warnings.first?.key == "pools.primary.tls.verify" && config.warnings.first?.line == 4, "\(config.warnings)")
    }

    @Test func aClientCertificateForAnUpstreamThatRequiresOne() async throws {
        let c = Self.certificates
        let upstream = try await Self.gunicorn(["--ca-certs", c.caFile, "--cert-reqs", "2"])
        defer { Task { await upstream.stop() } }
        try await Self.withGateway(upstream.url, tls: "{ ca_file: \(c.caFile), sni: api.internal }") { gateway in
            let refused = try await gateway.request("GET", "/items")
            #expect(refused.status == 502, "without a client certificate: \(refused.status) \(refused.text)")
        }
        try await Self.withGateway(upstream.url,
                                   tls: "{ ca_file: \(c.caFile), sni: api.internal, cert: \(c.certFile("gateway")), key: \(c.keyFile("gateway")) }") { gateway in
            let response = try await gateway.request("GET", "/items")
            #expect(response.status == 200 && response.text.contains("\"scheme\": \"https\""), "\(response.text)")
        }
    }

    @Test func badUpstreamTLSSettingsAreConfigErrors() throws {
        let c = Self.certificates
        let base = "pools:\n  primary:\n"
        let missing = configError(addingTo: base, "    servers: [https://127.0.0.1:1]\n    tls: { ca_file: /nonexistent/ca.pem }\n")
        #expect(missing?.key == "pools.primary.tls.ca_file" && missing?.line == 4
                && missing?.message.contains("cannot read /nonexistent/ca.pem") == true, "\(String(describing: missing))")
        let cleartext = configError(addingTo: base, "    servers: [http://127.0.0.1:1]\n    tls: { ca_file: \(c.caFile) }\n")
        #expect(cleartext?.key == "pools.primary.tls" && cleartext?.message.contains("this pool has none") == true,
                "\(String(describing: cleartext))")
        let halfPair = configError(addingTo: base, "    servers: [https://127.0.0.1:1]\n    tls: { cert: \(c.certFile("gateway")) }\n")
        #expect(halfPair?.message.contains("needs both cert: and key:") == true, "\(String(describing: halfPair))")
        let ipSNI = configError(addingTo: base, "    servers: [https://127.0.0.1:1]\n    tls: { sni: 10.0.0.1 }\n")
        #expect(ipSNI?.key == "pools.primary.tls.sni", "\(String(describing: ipSNI))")
        let url = try ConfigLoader.parse(yaml: base + "    servers: [https://api.internal]\n", file: "gw.yaml")
        #expect(url.pools[0].servers[0].url == UpstreamURL(host: "api.internal", port: 443, secure: true))
        #expect(url.pools[0].tlsMaterial?.serverName(forHost: url.pools[0].servers[0].url.host) == "api.internal")
    }
}
