import Testing

@testable import Gateway

/// The rate limit filter in the pipeline, in memory (the in-process table; GCRA's arithmetic
/// has its own tests with an injected clock in `RateLimitTests`).
@Suite struct RateLimitFilterTests {
    static let config = """
        access_log: false
        trusted_proxies: [192.0.2.0/24]
        pools:
          primary: { servers: [http://127.0.0.1:9000] }
        rate_limits:
          default: api
          allow: [198.51.100.7/32]
          policies:
            api: { limit: 2, period: 1h }
            keys: { limit: 1, period: 1h, key: "header:X-Api-Key" }
        routes:
          - match: { path: /keys/** }
            rate_limit: keys
          - match: { path: /free/** }
            rate_limit: none
        """
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    @Test func pastTheLimitThe429CarriesRetryAfterAndEveryResponseTheFields() throws {
        let gateway = try EmbeddedGateway(Self.config)
        for remaining in [1, 0] {
            let (upstream, response) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok)
            #expect(upstream != nil)
            #expect(response.status == 200)
            #expect(response.header("ratelimit-policy") == "\"api\";q=2;w=3600")
            #expect(response.header("ratelimit")?.hasPrefix("\"api\";r=\(remaining);t=") == true)
        }
        let (upstream, limited) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok)
        #expect(upstream == nil)
        #expect(limited.status == 429)
        #expect(Int(limited.header("retry-after") ?? "") ?? 0 >= 1)
        #expect(limited.header("ratelimit")?.hasPrefix("\"api\";r=0;") == true)
        #expect(limited.text.contains("\"error\":\"rate limit exceeded\""))
        #expect(gateway.context.rateLimits.stats[0].allowed == 2)
        #expect(gateway.context.rateLimits.stats[0].limited == 1)
    }

    @Test func forwardedClientsAndTheAllowlist() throws {
        let gateway = try EmbeddedGateway(Self.config)
        // From a trusted proxy, the forwarded address is the client: each has its own bucket.
        for client in ["203.0.113.1", "203.0.113.2"] {
            for _ in 0..<2 {
                let (_, response) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: \(client)\r\n\r\n", upstream: Self.ok)
                #expect(response.status == 200)
            }
        }
        // The allowlist is never limited, and its responses carry no fields.
        for _ in 0..<4 {
            let (_, response) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n", upstream: Self.ok)
            #expect(response.status == 200)
            #expect(response.header("ratelimit") == nil)
        }
        #expect(gateway.context.rateLimits.stats[0].exempt == 4)
    }

    @Test func routesPickTheirPolicyAndKey() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let (_, first) = try gateway.send("GET /keys/1 HTTP/1.1\r\nHost: api\r\nX-Api-Key: k1\r\n\r\n", upstream: Self.ok)
        #expect(first.status == 200 && first.header("ratelimit-policy") == "\"keys\";q=1;w=3600")
        let (_, second) = try gateway.send("GET /keys/2 HTTP/1.1\r\nHost: api\r\nX-Api-Key: k1\r\n\r\n", upstream: Self.ok)
        #expect(second.status == 429)
        let (_, otherKey) = try gateway.send("GET /keys/3 HTTP/1.1\r\nHost: api\r\nX-Api-Key: k2\r\n\r\n", upstream: Self.ok)
        #expect(otherKey.status == 200)
        for _ in 0..<3 {
            let (_, free) = try gateway.send("GET /free/x HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok)
            #expect(free.status == 200 && free.header("ratelimit") == nil)
        }
        // `rate_limit: none` leaves the filter out of the route's chain.
        #expect(gateway.context.runtime.filterChains.chain(forRoute: 1).count == 0)
    }

    @Test func gatewayErrorsOnALimitedRouteCarryTheFieldsToo() throws {
        let gateway = try EmbeddedGateway(Self.config)
        gateway.refuseUpstreamConnections()
        let (_, response) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(response.status == 502)
        #expect(response.header("ratelimit")?.hasPrefix("\"api\";r=1;") == true)
    }
}
