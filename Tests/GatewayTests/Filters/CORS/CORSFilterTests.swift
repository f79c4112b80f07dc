import Testing

@testable import Gateway

/// The CORS filter in the pipeline, in memory.
@Suite struct CORSFilterTests {
    static let config = """
        access_log: false
        pools:
          primary: { servers: [http://127.0.0.1:9000] }
        cors:
          web: { allow_origins: [https://app.example.com], allow_methods: [GET, PUT], allow_headers: [Authorization], max_age: 10m }
        routes:
          - match: { path: /web/** }
            cors: web
        """
    static let upstreamWithCORS = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nAccess-Control-Allow-Origin: *\r\nX-App: 1\r\n\r\nok"

    @Test func aPreflightIsAnsweredAndNeverForwarded() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let (upstream, response) = try gateway.send(
            "OPTIONS /web/items HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: PUT\r\n"
                + "Access-Control-Request-Headers: authorization\r\n\r\n")
        #expect(upstream == nil)
        #expect(response.status == 204)
        #expect(response.header("access-control-allow-origin") == "https://app.example.com")
        #expect(response.header("access-control-allow-methods")?.contains("PUT") == true)
        #expect(response.header("access-control-max-age") == "600")
        #expect(response.header("x-request-id") != nil)
    }

    @Test func thePolicyReplacesTheUpstreamsOwnFields() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let (upstream, response) = try gateway.send("GET /web/items HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\r\n",
                                                    upstream: Self.upstreamWithCORS)
        #expect(upstream?.hasPrefix("GET /web/items HTTP/1.1") == true)
        #expect(response.headers("access-control-allow-origin") == ["https://app.example.com"])
        #expect(response.header("x-app") == "1")
        #expect(response.text == "ok")
    }

    @Test func aRefusedOriginGetsNoCORSFieldsAtAll() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let (_, response) = try gateway.send("GET /web/items HTTP/1.1\r\nHost: api\r\nOrigin: https://evil.example\r\n\r\n",
                                             upstream: Self.upstreamWithCORS)
        #expect(response.status == 200)
        #expect(response.header("access-control-allow-origin") == nil)
    }

    @Test func routesWithoutAPolicyAndRequestsWithoutAnOriginAreLeftAlone() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let (_, other) = try gateway.send("GET /api/items HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\r\n",
                                          upstream: Self.upstreamWithCORS)
        #expect(other.header("access-control-allow-origin") == "*")
        let (_, noOrigin) = try gateway.send("GET /web/items HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.upstreamWithCORS)
        #expect(noOrigin.header("access-control-allow-origin") == "*")
        // Only configured filters are in a chain.
        #expect(gateway.context.runtime.filterChains.chain(forRoute: nil).count == 0)
        #expect(gateway.context.runtime.filterChains.chain(forRoute: 0).count == 1)
    }

    @Test func errorsOfAPolicyRouteCarryItsFields() throws {
        let gateway = try EmbeddedGateway(Self.config)
        gateway.refuseUpstreamConnections()
        let (_, response) = try gateway.send("GET /web/items HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\r\n")
        #expect(response.status == 502)
        #expect(response.header("access-control-allow-origin") == "https://app.example.com")
    }
}
