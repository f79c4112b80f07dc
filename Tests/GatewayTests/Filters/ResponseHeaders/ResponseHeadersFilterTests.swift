import Testing

@testable import Gateway

/// `response_headers:` on a route: the example of a filter (see the README's "Adding a filter").
@Suite struct ResponseHeadersFilterTests {
    static let config = """
        access_log: false
        pools:
          primary: { servers: [http://127.0.0.1:9000] }
        routes:
          - match: { path: "/api/items/{id}" }
            cache: { ttl: 1h, shared: true }
            response_headers:
              Strict-Transport-Security: max-age=63072000
              X-Content-Type-Options: nosniff
        """

    @Test func everyResponseOfTheRouteCarriesThem() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let upstream = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Content-Type-Options: upstream\r\n\r\nok"
        let (_, forwarded) = try gateway.send("GET /api/items/1 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: upstream)
        #expect(forwarded.header("strict-transport-security") == "max-age=63072000")
        #expect(forwarded.headers("x-content-type-options") == ["upstream", "nosniff"])
        // A cached answer.
        let (again, cached) = try gateway.send("GET /api/items/1 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(again == nil)
        #expect(cached.header("age") != nil)
        #expect(cached.header("strict-transport-security") == "max-age=63072000")
        // The gateway's own answer.
        gateway.refuseUpstreamConnections()
        let (_, failed) = try gateway.send("GET /api/items/2 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(failed.status == 502)
        #expect(failed.header("strict-transport-security") == "max-age=63072000")
        // Not on other routes.
        let (_, other) = try gateway.send("GET /other HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(other.header("strict-transport-security") == nil)
    }

    @Test func badHeadersAreConfigErrorsWithTheirLine() {
        let base = """
            pools:
              primary: { servers: [http://127.0.0.1:9000] }
            routes:
              - match: { path: /api/** }
                response_headers:

            """
        let badName = configError(addingTo: base, "          \"X Bad\": value\n")
        #expect(badName?.description.contains("test.yaml:6") == true)
        #expect(badName?.description.contains("routes[0].response_headers") == true)
        #expect(badName?.description.contains("is not a header name") == true)
        let managed = configError(addingTo: base, "          Content-Length: \"5\"\n")
        #expect(managed?.description.contains("is set by the gateway itself") == true)
        let control = configError(addingTo: base, "          X-Split: \"a\\r\\nInjected: yes\"\n")
        #expect(control?.description.contains("control characters") == true)
        #expect(configError(addingTo: base, "          X-Fine: fine\n") == nil)
    }
}

