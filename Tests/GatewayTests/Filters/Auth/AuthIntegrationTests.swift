import Foundation
import Testing
import TestSupport

@testable import Gateway

/// JWT auth through a real gateway in front of real upstreams, with tokens signed by PyJWT and
/// keys made by openssl: what is refused and how, what the upstream sees, and how a verified
/// user becomes the identity of cache entries, read-your-writes and limits.
@Suite(.timeLimit(.minutes(3)))
struct AuthIntegrationTests {
    static let secret = "django-insecure-shared-secret-key-of-both-backends"
    static let issuer = "https://api.example.test"

    /// An upstream, the tools, and a gateway from `yaml` (`{{upstream}}`, `{{secret}}` filled).
    static func with(_ yaml: String, extra: [String: String] = [:], _ body: (TestGateway, TestUpstream, JWTTools) async throws -> Void) async throws {
        let upstream = TestUpstream(name: "api")
        try await upstream.start()
        let tools = try JWTTools.make()
        defer { tools.remove() }
        let gateway: TestGateway
        do {
            gateway = try await TestGateway.start(yaml, ["upstream": upstream.url, "secret": secret] .merging(extra) { $1 })
        } catch {
            await upstream.stop()
            throw error
        }
        do { try await body(gateway, upstream, tools) } catch {
            await gateway.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await upstream.stop()
    }

    static let sharedSecretConfig = """
        listen: 127.0.0.1:0
        admin: 127.0.0.1:0
        event_loops: 2
        auth:
          token_from: [bearer, cookie:access_token]
          claims_to_headers: { sub: X-User-Id, plan: X-User-Plan }
          issuers:
            django: { hs256_secret: "{{secret}}", issuer: "\(issuer)", audiences: [web, mobile] }
        routes:
          - { match: { path: /private/** }, auth: required }
          - { match: { path: /open/** }, auth: optional }
        pools:
          primary: { role: primary, servers: ["{{upstream}}"] }
        """

    func claims(_ sub: String, plan: String = "pro", aud: String = "web", iss: String = AuthIntegrationTests.issuer) -> [String: String] {
        ["sub": sub, "plan": plan, "aud": aud, "iss": iss]
    }

    @Test func aSharedSecretTokenIsVerifiedAndItsClaimsGoUpstream() async throws {
        try await Self.with(Self.sharedSecretConfig) { gateway, upstream, tools in
            let token = try await tools.sign(.init(claims: claims("alice"), secret: Self.secret))
            let response = try await gateway.request("GET", "/private/profile", headers: [
                "Authorization: Bearer \(token)", "X-User-Id: mallory", "x-user-plan: team",
            ])
            #expect(response.status == 200)
            // The claims, and only the claims: the client's copies were removed.
            #expect(upstream.stats.lastHeaders["x-user-id"] == ["alice"])
            #expect(upstream.stats.lastHeaders["x-user-plan"] == ["pro"])
            // The same from the cookie.
            let byCookie = try await gateway.request("GET", "/private/profile", headers: ["Cookie: theme=dark; access_token=\(token)"])
            #expect(byCookie.status == 200 && upstream.stats.lastHeaders["x-user-id"] == ["alice"])
            // A route without auth never forwards a client's claim headers either.
            _ = try await gateway.request("GET", "/public", headers: ["X-User-Id: mallory", "Authorization: Bearer \(token)"])
            #expect(upstream.stats.lastHeaders["x-user-id"] == nil)
            #expect(upstream.stats.lastHeaders["authorization"] == ["Bearer \(token)"])
        }
    }

    @Test func requiredRoutesRefuseEveryBadTokenWithItsReason() async throws {
        try await Self.with(Self.sharedSecretConfig) { gateway, upstream, tools in
            try await tools.generateKey("rsa", .rsa)
            let bad: [(String, JWTTools.Spec, String)] = [
                ("expired", .init(claims: claims("alice"), relative: ["exp": -60], secret: Self.secret), "expired"),
                ("not yet valid", .init(claims: claims("alice"), relative: ["exp": 3600, "nbf": 600], secret: Self.secret), "not_yet_valid"),
                ("wrong issuer", .init(claims: claims("alice", iss: "https://evil.test"), secret: Self.secret), "wrong_issuer"),
                ("wrong audience", .init(claims: claims("alice", aud: "billing"), secret: Self.secret), "wrong_audience"),
                ("other secret", .init(claims: claims("alice"), secret: "a-different-secret-of-another-service"), "bad_signature"),
                ("alg none", .init(claims: claims("alice"), algorithm: "none"), "disallowed_alg"),
                ("RS256 where HS256 is expected", .init(claims: claims("alice"), algorithm: "RS256", keyName: "rsa"), "disallowed_alg"),
                ("no exp", .init(claims: claims("alice"), relative: [:], secret: Self.secret), "missing_claim"),
            ]
            let tokens = try await tools.sign(bad.map(\.1))
            let good = try await tools.sign(.init(claims: claims("alice"), secret: Self.secret))
            var cases = zip(bad, tokens).map { entry, token in (entry.0, token, entry.2) }
            cases.append(("signature cut off", good.split(separator: ".").prefix(2).joined(separator: ".") + ".", "bad_signature"))
            cases.append(("cut in half", String(good.prefix(good.count / 2)), "malformed"))
            cases.append(("garbage", "not-a-jwt", "malformed"))
            cases.append(("two parts", good.split(separator: ".").prefix(2).joined(separator: "."), "malformed"))
            for (name, token, reason) in cases {
                let response = try await gateway.request("GET", "/private/x", headers: ["Authorization: Bearer \(token)"])
                #expect(response.status == 401, "\(name)")
                let challenge = response.header("WWW-Authenticate") ?? ""
                #expect(challenge.hasPrefix("Bearer error=\"invalid_token\"") && challenge.contains("error_description=\"\(reason):"),
                        "\(name): \(challenge)")
                #expect(response.header("Content-Type") == "application/json" && response.text.contains("\"error\":\"invalid token: "), "\(name)")
                // On an optional route the same token is anonymous: served, without claims.
                let optional = try await gateway.request("GET", "/open/x", headers: ["Authorization: Bearer \(token)"])
                #expect(optional.status == 200 && upstream.stats.lastHeaders["x-user-id"] == nil, "\(name)")
            }
            // No token at all: a challenge without an error code (RFC 6750 §3.1).
            let missing = try await gateway.request("GET", "/private/x")
            #expect(missing.status == 401 && missing.header("WWW-Authenticate") == "Bearer")
            #expect(upstream.stats.requestsByPath["/private/x"] == nil)
            let metrics = try await gateway.admin("/metrics").text
            for (_, _, reason) in cases {
                #expect(metrics.contains("gateway_auth_verifications_total{result=\"\(reason)\"}"))
                #expect(!metrics.contains("gateway_auth_verifications_total{result=\"\(reason)\"} 0\n"), "\(reason)")
            }
            #expect(metrics.contains("gateway_auth_requests_total{result=\"missing_token\"} 1\n"))
            #expect(metrics.contains("gateway_errors_total{kind=\"unauthorized\"}"))
        }
    }

    @Test func aRepeatedTokenIsVerifiedOncePerEventLoop() async throws {
        try await Self.with(Self.sharedSecretConfig) { gateway, _, tools in
            let token = try await tools.sign(.init(claims: claims("alice"), secret: Self.secret))
            let client = try await gateway.client()
            for _ in 0..<20 {
                try await client.send("GET /private/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(token)\r\n\r\n")
                #expect(try await client.readResponse().status == 200)
            }
            await client.close()
            let metrics = try await gateway.admin("/metrics").text
            // One keep-alive connection is on one event loop: one signature check, 19 hits.
            #expect(metrics.contains("gateway_auth_verifications_total{result=\"ok\"} 1\n"))
            #expect(metrics.contains("gateway_auth_token_cache_hits_total 19\n"))
        }
    }

    @Test func http2StreamsAreVerifiedLikeHTTP1Requests() async throws {
        let tools = try JWTTools.make()
        defer { tools.remove() }
        let token = try await tools.sign(.init(claims: claims("alice"), secret: Self.secret))
        try await HTTP2Tests.withGateway(HTTP2Tests.h2c(), extra: """
            auth:
              default: required
              claims_to_headers: { sub: X-User-Id }
              issuers:
                django: { hs256_secret: "\(Self.secret)", issuer: "\(Self.issuer)", audiences: [web] }
            """) { gateway, upstream in
            let url = "http://127.0.0.1:\(gateway.proxyPort)/echo"
            // curl over h2c: the token is verified on the stream, the claim goes upstream, the spoof does not.
            let ok = try HTTP2Tests.curl("--http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' "
                                         + "-H 'Authorization: Bearer \(token)' -H 'X-User-Id: mallory' \(url)")
            #expect(ok.output == "2 200", "\(ok.output)")
            #expect(upstream.stats.lastHeaders["x-user-id"] == ["alice"])
            let refused = try HTTP2Tests.curl("--http2-prior-knowledge -i -H 'Authorization: Bearer \(token)x' \(url)")
            #expect(refused.output.hasPrefix("HTTP/2 401"), "\(refused.output)")
            #expect(refused.output.contains("www-authenticate: Bearer error=\"invalid_token\", error_description=\"bad_signature:"),
                    "\(refused.output)")
            let missing = try HTTP2Tests.curl("--http2-prior-knowledge -i \(url)")
            #expect(missing.output.hasPrefix("HTTP/2 401") && missing.output.contains("www-authenticate: Bearer\r\n"), "\(missing.output)")
        }
    }
}
