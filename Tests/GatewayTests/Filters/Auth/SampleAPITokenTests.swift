import Foundation
import Testing
import TestSupport

@testable import Gateway

/// The demo's setup end to end: the sample API (gunicorn, PostgreSQL) signs HS256 JWTs at
/// login, the gateway verifies them, passes the user as X-User-Id, and limits by plan.
@Suite(.timeLimit(.minutes(3)))
struct SampleAPITokenTests {
    /// The auth, identity and per-plan parts of config/demo.yaml.
    static let demoAuth = """
        identity: [jwt:sub, ip]
        auth:
          default: optional
          token_from: [bearer, cookie:session]
          claims_to_headers: { sub: X-User-Id, plan: X-User-Plan }
          issuers:
            sample-api: { hs256_secret: "sample-api-secret" }
        rate_limits:
          policies:
            per-plan: { limit: 3, period: 1m, key: identity, by_claim: plan, limits: { pro: 5 } }
        routes:
          - { match: { path: /api/me, methods: [GET, HEAD] }, auth: required, rate_limit: per-plan }
        """

    static func login(_ gateway: TestGateway, _ n: Int) async throws -> (token: String, user: String) {
        let response = try await gateway.send("POST", "/api/auth/login", body: "{\"email\":\"user\(n)@example.com\",\"password\":\"password\"}")
        #expect(response.status == 200, "\(response.text)")
        let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        return (try #require(body["token"] as? String), try #require(body["user_id"] as? String))
    }

    static func me(_ gateway: TestGateway, _ headers: [String]) async throws -> TestResponse {
        try await RawClient.request("GET", "http://127.0.0.1:\(gateway.proxyPort)/api/me", headers: headers, timeout: .seconds(15))
    }

    @Test func loginTokensAreVerifiedAndLimitedByPlan() async throws {
        try await withStackGateway(regions: ["us-east"], extraYAML: Self.demoAuth) { _, gateway in
            let (token, user) = try await Self.login(gateway, 7)
            #expect(token.split(separator: ".").count == 3)
            // The API answers for the user the gateway verified, by bearer token or by the login's cookie.
            let me = try await Self.me(gateway, ["Authorization: Bearer \(token)"])
            #expect(me.status == 200 && me.text.contains("user7@example.com"), "\(me.text)")
            #expect(me.header("RateLimit-Policy")?.hasPrefix("\"per-plan\";q=3") == true)
            let byCookie = try await Self.me(gateway, ["Cookie: session=\(token)"])
            #expect(byCookie.status == 200 && byCookie.text.contains("user7@example.com"))
            // Without a token, a client-sent X-User-Id gets nowhere: the gateway answers 401.
            let spoofed = try await Self.me(gateway, ["X-User-Id: \(user)"])
            #expect(spoofed.status == 401 && spoofed.header("WWW-Authenticate") == "Bearer")
            // Free plan: three a minute. The 401 spent nothing (auth comes before the limiter): one left, then 429.
            #expect(try await Self.me(gateway, ["Authorization: Bearer \(token)"]).status == 200)
            #expect(try await Self.me(gateway, ["Authorization: Bearer \(token)"]).status == 429)

            // Upgraded to pro and logged in again: the new token's plan picks the pro limit.
            let upgrade = try await gateway.send("PATCH", "/api/subscriptions/\(user)", body: "{\"plan\":\"pro\"}")
            #expect(upgrade.status == 200)
            let (proToken, _) = try await Self.login(gateway, 7)
            for _ in 0..<5 {
                let response = try await Self.me(gateway, ["Authorization: Bearer \(proToken)"])
                #expect(response.status == 200 && response.header("RateLimit-Policy")?.hasPrefix("\"per-plan.pro\";q=5") == true)
            }
            #expect(try await Self.me(gateway, ["Authorization: Bearer \(proToken)"]).status == 429)
            // Back to free for the next run of the seeded data.
            _ = try await gateway.send("PATCH", "/api/subscriptions/\(user)", body: "{\"plan\":\"free\"}")
        }
    }
}
