import Foundation
import Testing
import TestSupport

@testable import Gateway

/// TLS termination against real clients: curl and `openssl s_client` (SNI, versions, ALPN,
/// client certificates), raw sockets for silent and non-TLS clients, and certificates made by
/// the `openssl` command line.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TLSListenerTests {
    static let certificates: TestCertificates = {
        let certificates = try! TestCertificates()
        try! certificates.makeServer("api", dnsNames: ["api.test", "localhost"])
        try! certificates.makeServer("shop", dnsNames: ["*.shop.test"])
        try! certificates.makeClient("client-1")
        try! certificates.makeClient("stranger", ca: "other-ca")
        return certificates
    }()

    static func tls(_ extra: String = "") -> String {
        let c = certificates
        return """
            listen:
              - address: 127.0.0.1:0
                tls:
                  certificates:
                    - { cert: \(c.certFile("api")), key: \(c.keyFile("api")) }
                    - { cert: \(c.certFile("shop")), key: \(c.keyFile("shop")) }
                  handshake_timeout: 500ms
            \(extra)
            """
    }

    /// Runs the gateway with `listen:` replaced by `listeners` in front of one upstream.
    static func withTLSGateway(_ listeners: String, _ body: (TestGateway, TestUpstream) async throws -> Void) async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let gateway: TestGateway
        do {
            gateway = try await TestGateway.start("""
                \(listeners)
                admin: 127.0.0.1:0
                event_loops: 1
                pools:
                  primary: { role: primary, servers: [\(upstream.url)] }
                """)
        } catch {
            await upstream.stop()
            throw error
        }
        do { try await body(gateway, upstream) } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }

    static func curl(_ arguments: String) throws -> Shell.Result {
        try Shell.run("curl -sS --max-time 10 \(arguments)")
    }

    static func sClient(_ port: Int, _ arguments: String) throws -> String {
        try Shell.run("openssl s_client -connect 127.0.0.1:\(port) -CAfile \(certificates.caFile) \(arguments)", input: "").output
    }

    @Test func servesHTTPSWithTheCertificateSNINames() async throws {
        try await Self.withTLSGateway(Self.tls()) { gateway, upstream in
            let port = gateway.proxyPort
            // HTTP/1.1 over TLS here (HTTP/2, which ALPN prefers, has its own suite).
            let result = try Self.curl("--http1.1 --cacert \(Self.certificates.caFile) --resolve api.test:\(port):127.0.0.1 -w '\\n%{http_version} %{ssl_verify_result}' https://api.test:\(port)/echo")
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.hasSuffix("\n1.1 0"), "\(result.output)")
            #expect(upstream.stats.lastHeaders["x-forwarded-proto"] == ["https"])

            // Each name gets its own certificate; no SNI gets the first (the default).
            let shop = try Self.sClient(port, "-servername orders.shop.test -verify_return_error")
            #expect(shop.contains("subject=CN = *.shop.test") && shop.contains("Verify return code: 0 (ok)"), "\(shop)")
            let api = try Self.sClient(port, "-servername api.test -verify_return_error")
            #expect(api.contains("subject=CN = api.test") && api.contains("Verify return code: 0 (ok)"), "\(api)")
            let none = try Self.sClient(port, "-noservername")
            #expect(none.contains("subject=CN = api.test"), "\(none)")
            // A wildcard covers one label only.
            let deep = try Self.sClient(port, "-servername a.b.shop.test")
            #expect(deep.contains("subject=CN = api.test"), "\(deep)")

            let line = try #require(gateway.accessLog.entries.last { $0.metadata["path"] == "/echo" })
            #expect(line.metadata["tls"] == "TLSv1.3" && line.metadata["proto"] == "http/1.1")
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_tls_handshakes_total{listener=\"127.0.0.1:0\",version=\"TLSv1.3\"}"))
            #expect(metrics.contains("gateway_tls_certificate_expiry_timestamp_seconds{listener=\"127.0.0.1:0\",certificate=\"*.shop.test\"}"))
        }
    }

    @Test func versionsAndALPN() async throws {
        try await Self.withTLSGateway(Self.tls()) { gateway, _ in
            let port = gateway.proxyPort
            let tls12 = try Self.sClient(port, "-servername api.test -tls1_2 -alpn http/1.1")
            #expect(tls12.contains("Protocol  : TLSv1.2") || tls12.contains("New, TLSv1.2"), "\(tls12)")
            #expect(tls12.contains("ALPN protocol: http/1.1"), "\(tls12)")
            // h2 is offered first (the client's order does not matter).
            let tls13 = try Self.sClient(port, "-servername api.test -tls1_3 -alpn http/1.1,h2")
            #expect(tls13.contains("New, TLSv1.3") && tls13.contains("ALPN protocol: h2"), "\(tls13)")
            let h2Only = try Self.sClient(port, "-servername api.test -alpn h2")
            #expect(h2Only.contains("ALPN protocol: h2"), "\(h2Only)")
            let tls11 = try Self.sClient(port, "-servername api.test -tls1_1")
            #expect(!tls11.contains("New, TLSv1.1"), "\(tls11)")
            let http10 = try Self.curl("--cacert \(Self.certificates.caFile) --resolve api.test:\(port):127.0.0.1 --tls-max 1.2 -o /dev/null -w '%{http_code}' https://api.test:\(port)/")
            #expect(http10.output == "200", "\(http10.output)")
            let line = try #require(gateway.accessLog.entries.last)
            #expect(line.metadata["tls"] == "TLSv1.2")
            // TLS 1.2 offers forward-secret AEAD suites only: a CBC suite (LUCKY13) is refused.
            let gcm = try Self.sClient(port, "-servername api.test -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256")
            #expect(gcm.contains("ECDHE-ECDSA-AES128-GCM-SHA256") && gcm.contains("New, TLSv1.2"), "\(gcm)")
            let cbc = try Self.sClient(port, "-servername api.test -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA")
            #expect(!cbc.contains("New, TLSv1.2"), "\(cbc)")
            // One suite per key type by default: the server's choice, whatever the client prefers.
            let chacha = try Self.sClient(port, "-servername api.test -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256")
            #expect(chacha.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"), "\(chacha)")
        }
        // ciphers: widens the TLS 1.2 list, for clients that want ChaCha20 (the client picks then).
        try await Self.withTLSGateway(Self.tls().replacingOccurrences(of: "handshake_timeout: 500ms",
                                                                      with: "ciphers: [ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-ECDSA-AES128-GCM-SHA256]")) { gateway, _ in
            let chacha = try Self.sClient(gateway.proxyPort, "-servername api.test -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305")
            #expect(chacha.contains("Cipher is ECDHE-ECDSA-CHACHA20-POLY1305") && chacha.contains("New, TLSv1.2"), "\(chacha)")
        }
        // alpn: [http/1.1] turns HTTP/2 off: a client that speaks only h2 gets no protocol.
        try await Self.withTLSGateway(Self.tls().replacingOccurrences(of: "handshake_timeout: 500ms", with: "alpn: [http/1.1]")) { gateway, _ in
            let h2Only = try Self.sClient(gateway.proxyPort, "-servername api.test -alpn h2")
            #expect(h2Only.contains("No ALPN negotiated"), "\(h2Only)")
            let curl = try Self.curl("--http2 -o /dev/null -w '%{http_version}' --cacert \(Self.certificates.caFile) --resolve api.test:\(gateway.proxyPort):127.0.0.1 https://api.test:\(gateway.proxyPort)/")
            #expect(curl.output == "1.1", "\(curl.output)")
        }
        // min_version 1.3 refuses TLS 1.2 clients.
        try await Self.withTLSGateway(Self.tls().replacingOccurrences(of: "handshake_timeout: 500ms", with: "min_version: \"1.3\"")) { gateway, _ in
            let refused = try Self.curl("--cacert \(Self.certificates.caFile) --resolve api.test:\(gateway.proxyPort):127.0.0.1 --tls-max 1.2 https://api.test:\(gateway.proxyPort)/")
            #expect(refused.status != 0)
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_tls_handshake_errors_total{listener=\"127.0.0.1:0\",reason=\"protocol_version\"} 1"), "\(metrics)")
        }
    }

    @Test func clientCertificatesRequiredAndRefused() async throws {
        let c = Self.certificates
        let listeners = Self.tls().replacingOccurrences(of: "handshake_timeout: 500ms", with: "client_ca: \(c.caFile)")
        try await Self.withTLSGateway(listeners) { gateway, _ in
            let base = "--cacert \(c.caFile) --resolve api.test:\(gateway.proxyPort):127.0.0.1 -o /dev/null -w '%{http_code}' https://api.test:\(gateway.proxyPort)/"
            let with = try Self.curl("--cert \(c.certFile("client-1")) --key \(c.keyFile("client-1")) " + base)
            #expect(with.status == 0 && with.output == "200", "\(with.output)")
            let without = try Self.curl(base)
            #expect(without.output != "200", "\(without.output)")
            let stranger = try Self.curl("--cert \(c.certFile("stranger")) --key \(c.keyFile("stranger")) " + base)
            #expect(stranger.output != "200", "\(stranger.output)")
            let counted = try await eventually {
                let metrics = try await gateway.admin("/metrics").text
                return metrics.contains("reason=\"no_client_certificate\"} 1") && metrics.contains("reason=\"bad_client_certificate\"} 1")
            }
            let metrics = try await gateway.admin("/metrics").text
            #expect(counted, "\(metrics)")
        }
        // optional: clients without a certificate get in; a stranger's is still refused.
        try await Self.withTLSGateway(listeners.replacingOccurrences(of: "client_ca: \(c.caFile)", with: "client_ca: \(c.caFile)\n      client_auth: optional")) { gateway, _ in
            let base = "--cacert \(c.caFile) --resolve api.test:\(gateway.proxyPort):127.0.0.1 -o /dev/null -w '%{http_code}' https://api.test:\(gateway.proxyPort)/"
            let anonymous = try Self.curl(base)
            #expect(anonymous.output == "200", "\(anonymous.output)")
            let stranger = try Self.curl("--cert \(c.certFile("stranger")) --key \(c.keyFile("stranger")) " + base)
            #expect(stranger.output != "200", "\(stranger.output)")
        }
    }

    @Test func silentGarbageAndPlainHTTPClientsAreCutAndCounted() async throws {
        try await Self.withTLSGateway(Self.tls()) { gateway, _ in
            // Silent: connected, never says hello; cut at handshake_timeout.
            let silent = try await RawClient.connect(port: gateway.proxyPort)
            let started = ContinuousClock.now
            let closed = await silent.waitForClose(timeout: .seconds(5))
            #expect(closed && ContinuousClock.now - started < .seconds(3))
            // Plain HTTP on the TLS port, then bytes that are no TLS at all.
            let plain = try await RawClient.connect(port: gateway.proxyPort, sending: "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(await plain.waitForClose(timeout: .seconds(5)))
            let garbage = try await RawClient.connect(port: gateway.proxyPort, sending: String(repeating: "\u{16}\u{03}\u{01}\u{ff}\u{ff}garbage", count: 50))
            #expect(await garbage.waitForClose(timeout: .seconds(5)))
            let counted = try await eventually {
                let metrics = try await gateway.admin("/metrics").text
                return metrics.contains("reason=\"timeout\"} 1") && metrics.contains("reason=\"http_request\"} 1")
            }
            let metrics = try await gateway.admin("/metrics").text
            #expect(counted, "\(metrics)")
            // Still serving.
            let ok = try Self.curl("--cacert \(Self.certificates.caFile) --resolve api.test:\(gateway.proxyPort):127.0.0.1 -o /dev/null -w '%{http_code}' https://api.test:\(gateway.proxyPort)/")
            #expect(ok.output == "200")
            #expect(gateway.accessLog.entries.count == 1)
        }
    }

    @Test func aCleartextListenerRedirectsToHTTPS() async throws {
        let listeners = Self.tls().replacingOccurrences(of: "listen:\n", with: "listen:\n  - { address: 127.0.0.1:0, redirect_https: 8443 }\n")
        try await Self.withTLSGateway(listeners) { gateway, upstream in
            let port = gateway.listenerPorts[0]
            let get = try Self.curl("-i http://127.0.0.1:\(port)/items/1?page=2 -H 'Host: api.test:\(port)'")
            #expect(get.output.hasPrefix("HTTP/1.1 301"), "\(get.output)")
            #expect(get.output.contains("Location: https://api.test:8443/items/1?page=2"), "\(get.output)")
            let post = try Self.curl("-i -X POST -d x=1 http://127.0.0.1:\(port)/orders -H 'Host: api.test'")
            #expect(post.output.hasPrefix("HTTP/1.1 308") && post.output.contains("Location: https://api.test:8443/orders"), "\(post.output)")
            #expect(upstream.stats.requests == 0)
            // The TLS listener beside it serves.
            let tlsPort = gateway.listenerPorts[1]
            let ok = try Self.curl("--cacert \(Self.certificates.caFile) --resolve api.test:\(tlsPort):127.0.0.1 -o /dev/null -w '%{http_code}' https://api.test:\(tlsPort)/")
            #expect(ok.output == "200")
        }
        #expect(HTTPSRedirect.location(host: "[::1]:8080", port: 443, target: "/a") == "https://[::1]/a")
        #expect(HTTPSRedirect.location(host: "api.test", port: 443, target: "http://api.test:80?x=1") == "https://api.test/?x=1")
    }

    @Test func badCertificatesAreConfigErrorsAndExpiredOnesWarnings() throws {
        let c = Self.certificates
        try c.makeExpired("expired", dnsName: "old.test")
        func load(_ tls: String) -> Result<GatewayConfig, ConfigError> {
            Result { () throws(ConfigError) in
                try ConfigLoader.parse(yaml: """
                    listen:
                      - address: 127.0.0.1:0
                        tls:
                    \(tls)
                    pools:
                      primary: { role: primary, servers: [http://127.0.0.1:1] }
                    """, file: "tls.yaml")
            }
        }
        func error(_ tls: String) -> ConfigError? {
            if case .failure(let error) = load(tls) { return error }
            return nil
        }
        let missing = error("      cert: /nonexistent/cert.pem\n      key: \(c.keyFile("api"))")
        #expect(missing?.key == "listen[0].tls.cert" && missing?.line == 4 && missing?.message.contains("cannot read /nonexistent/cert.pem") == true, "\(String(describing: missing))")
        let mismatched = error("      certificates:\n        - { cert: \(c.certFile("api")), key: \(c.keyFile("shop")) }")
        #expect(mismatched?.key == "listen[0].tls.certificates[0].key" && mismatched?.message.contains("is not the private key of") == true,
                "\(String(describing: mismatched))")
        let notPEM = error("      cert: \(c.directory)/api.ext\n      key: \(c.keyFile("api"))")
        #expect(notPEM?.message.contains("holds no PEM certificate") == true, "\(String(describing: notPEM))")
        let noName = error("      certificates:\n        - { cert: \(c.certFile("api")), key: \(c.keyFile("api")) }\n        - { cert: \(c.certFile("client-1")), key: \(c.keyFile("client-1")) }")
        #expect(noName?.key == "listen[0].tls.certificates[1].cert" && noName?.message.contains("SNI can never select it") == true,
                "\(String(describing: noName))")
        let badVersion = error("      cert: \(c.certFile("api"))\n      key: \(c.keyFile("api"))\n      min_version: \"1.1\"")
        #expect(badVersion?.key == "listen[0].tls.min_version", "\(String(describing: badVersion))")
        let spdy = error("      cert: \(c.certFile("api"))\n      key: \(c.keyFile("api"))\n      alpn: [h2, spdy/3]")
        #expect(spdy?.key == "listen[0].tls.alpn" && spdy?.message.contains("'spdy/3' is not a protocol this gateway speaks") == true,
                "\(String(describing: spdy))")
        let cbc = error("      cert: \(c.certFile("api"))\n      key: \(c.keyFile("api"))\n      ciphers: [ECDHE-RSA-AES128-SHA]")
        #expect(cbc?.key == "listen[0].tls.ciphers" && cbc?.message.contains("not a TLS 1.2 suite this gateway offers") == true,
                "\(String(describing: cbc))")
        guard case .success(let expired) = load("      cert: \(c.certFile("expired"))\n      key: \(c.keyFile("expired"))") else {
            Issue.record("an expired certificate must load (with a warning)")
            return
        }
        #expect(expired.warnings.count == 1)
        #expect(expired.warnings.first?.key == "listen[0].tls.cert" && expired.warnings.first?.message.contains("expired on 2020-02-01") == true,
                "\(expired.warnings)")
        let redirectOnly = configError(addingTo: "pools:\n  primary: { role: primary, servers: [http://127.0.0.1:1] }\n",
                                       "listen:\n  - { address: 127.0.0.1:0, redirect_https: 443 }\n")
        #expect(redirectOnly?.message.contains("no listener has tls") == true)
    }
}
