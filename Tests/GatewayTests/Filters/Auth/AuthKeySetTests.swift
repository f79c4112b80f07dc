import Foundation
import Testing
import TestSupport

@testable import Gateway

/// Issuers that publish their keys as a JWKS (Auth0, Cognito, Supabase): RS256 and ES256 tokens
/// through a key set served over HTTP, key rotation, an issuer that is down, and forged key ids.
@Suite(.timeLimit(.minutes(3)))
struct AuthKeySetTests {
    static let issuer = "https://tenant.auth.test/"

    static func with(minInterval: String = "1s", _ body: (TestGateway, KeySetServer, JWTTools) async throws -> Void) async throws {
        let tools = try JWTTools.make()
        defer { tools.remove() }
        try await tools.generateKey("rsa-a", .rsa)
        try await tools.generateKey("ec-a", .ec)
        try await tools.generateKey("rsa-b", .rsa)
        let keys = KeySetServer()
        try await keys.start()
        keys.serve(try await tools.keySet([("rsa-a", .rsa, "rsa-a"), ("ec-a", .ec, "ec-a")]))
        let upstream = TestUpstream(name: "api")
        try await upstream.start()
        let gateway: TestGateway
        do {
            gateway = try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                event_loops: 2
                auth:
                  default: required
                  issuers:
                    tenant: { jwks_url: "\(keys.url)", issuer: "\(issuer)", audiences: [api], jwks_min_interval: \(minInterval) }
                pools:
                  primary: { role: primary, servers: ["\(upstream.url)"] }
                """)
        } catch {
            await keys.stop()
            await upstream.stop()
            throw error
        }
        do { try await body(gateway, keys, tools) } catch {
            await gateway.stop()
            await keys.stop()
            await upstream.stop()
            throw error
        }
        await gateway.stop()
        await keys.stop()
        await upstream.stop()
    }

    static let claims = ["sub": "user-1", "iss": issuer, "aud": "api"]

    static func status(_ gateway: TestGateway, _ token: String) async throws -> (Int, String) {
        let response = try await gateway.request("GET", "/x", headers: ["Authorization: Bearer \(token)"])
        return (response.status, response.header("WWW-Authenticate") ?? "")
    }

    @Test func keysRotateAndRemovedKeysStopTheirTokens() async throws {
        try await Self.with { gateway, keys, tools in
            // Fetched at start, before the first request.
            #expect(keys.fetches == 1)
            let tokens = try await tools.sign([
                .init(claims: Self.claims, algorithm: "RS256", keyName: "rsa-a", kid: "rsa-a"),
                .init(claims: Self.claims, algorithm: "ES256", keyName: "ec-a", kid: "ec-a"),
                .init(claims: Self.claims, algorithm: "RS256", keyName: "rsa-b", kid: "rsa-b"),
                // The algorithm-confusion forgery: HS256 with the RSA public key as the HMAC secret.
                .init(claims: Self.claims, kid: "rsa-a", forgeWithFile: tools.publicKeyPath("rsa-a")),
                // A token signed by another key under a known kid.
                .init(claims: Self.claims, algorithm: "RS256", keyName: "rsa-b", kid: "rsa-a"),
            ])
            let (rsaA, ecA, rsaB, confusion, wrongKey) = (tokens[0], tokens[1], tokens[2], tokens[3], tokens[4])
            #expect(try await Self.status(gateway, rsaA).0 == 200)
            #expect(try await Self.status(gateway, ecA).0 == 200)
            #expect(try await Self.status(gateway, confusion).1.contains("disallowed_alg"))
            #expect(try await Self.status(gateway, wrongKey).1.contains("bad_signature"))
            // rsa-b is not published yet: the unknown kid fetches the set again, and is refused.
            #expect(try await Self.status(gateway, rsaB).1.contains("unknown_kid"))
            try await Task.sleep(for: .milliseconds(1100))
            // Rotation: rsa-b appears, rsa-a goes. The first rsa-b token fetches the new set.
            keys.serve(try await tools.keySet([("rsa-b", .rsa, "rsa-b"), ("ec-a", .ec, "ec-a")]))
            #expect(try await Self.status(gateway, rsaB).0 == 200)
            // rsa-a's token was verified (and cached) before; its key is gone, so it is refused now.
            #expect(try await Self.status(gateway, rsaA).1.contains("unknown_kid"))
            #expect(try await Self.status(gateway, ecA).0 == 200)
            let metrics = try await gateway.admin("/metrics").text
            // At start, and for the rotated key (the first rsa-b token came within jwks_min_interval
            // of the start's fetch, so it did not fetch).
            #expect(keys.fetches == 2)
            #expect(metrics.contains("gateway_auth_jwks_refreshes_total{issuer=\"tenant\",result=\"ok\"} 2\n"))
            #expect(metrics.contains("gateway_auth_jwks_keys{issuer=\"tenant\"} 2\n"))
        }
    }

    @Test func anIssuerThatIsDownDoesNotStopKnownKeysAndForgedKidsDoNotHammerIt() async throws {
        try await Self.with(minInterval: "2s") { gateway, keys, tools in
            let tokens = try await tools.sign((0..<6).map { index in
                index == 0 ? .init(claims: Self.claims, algorithm: "RS256", keyName: "rsa-a", kid: "rsa-a")
                    : .init(claims: Self.claims, algorithm: "RS256", keyName: "rsa-b", kid: "forged-\(index)")
            })
            keys.fail(with: 503)
            try await Task.sleep(for: .milliseconds(2100))
            // Five forged kids: one fetch (it fails), then none for jwks_min_interval.
            for token in tokens.dropFirst() {
                #expect(try await Self.status(gateway, token).1.contains("unknown_kid"))
            }
            #expect(keys.fetches == 2)
            // Known keys go on working while the issuer is down.
            for _ in 0..<3 { #expect(try await Self.status(gateway, tokens[0]).0 == 200) }
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_auth_jwks_refreshes_total{issuer=\"tenant\",result=\"error\"} 1\n"))
            #expect(metrics.contains("gateway_auth_verifications_total{result=\"unknown_kid\"} 5\n"))
        }
    }

    @Test func aReloadSwapsSecretsAndKeepsFetchedKeySets() async throws {
        let tools = try JWTTools.make()
        defer { tools.remove() }
        try await tools.generateKey("rsa-a", .rsa)
        let keys = KeySetServer()
        try await keys.start()
        keys.serve(try await tools.keySet([("rsa-a", .rsa, "rsa-a")]))
        let upstream = TestUpstream(name: "api")
        try await upstream.start()
        func config(secret: String) -> String {
            """
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 1
            auth:
              default: required
              issuers:
                tenant: { jwks_url: "\(keys.url)", issuer: "\(Self.issuer)" }
                backend: { hs256_secret: "\(secret)" }
            pools:
              primary: { role: primary, servers: ["\(upstream.url)"] }
            """
        }
        let file = NSTemporaryDirectory() + "auth-reload-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try config(secret: "the-first-shared-secret-of-the-backends").write(toFile: file, atomically: true, encoding: .utf8)
        let gateway = try await TestGateway.start(path: file)
        let tokens = try await tools.sign([
            .init(claims: ["sub": "a"], secret: "the-first-shared-secret-of-the-backends"),
            .init(claims: ["sub": "a"], secret: "the-rotated-shared-secret-of-the-backends"),
            .init(claims: Self.claims, algorithm: "RS256", keyName: "rsa-a", kid: "rsa-a"),
        ])
        // One event loop, so the first token is in the loop's cache of verified tokens.
        for _ in 0..<2 { #expect(try await Self.status(gateway, tokens[0]).0 == 200) }
        #expect(try await Self.status(gateway, tokens[1]).1.contains("bad_signature"))
        #expect(try await Self.status(gateway, tokens[2]).0 == 200)
        #expect(keys.fetches == 1)

        // The backends rotate their secret: a reload takes the new one, and the old token —
        // verified and cached before — is refused at once.
        try config(secret: "the-rotated-shared-secret-of-the-backends").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await gateway.admin("/admin/reload", method: "POST").status == 200)
        #expect(try await Self.status(gateway, tokens[0]).1.contains("bad_signature"))
        #expect(try await Self.status(gateway, tokens[1]).0 == 200)
        // The JWKS issuer did not change: its keys were kept, not fetched again.
        #expect(try await Self.status(gateway, tokens[2]).0 == 200)
        #expect(keys.fetches == 1)
        await gateway.stop()
        await keys.stop()
        await upstream.stop()
    }
}
