import Router
import Testing

@testable import Gateway

/// Read-your-writes in the pipeline, in memory: the token a write's response gets (its
/// follow-up), and what a read with that token is allowed to be served from.
@Suite struct ReadYourWritesFilterTests {
    static func config(mode: String, databases: Bool = false) -> String {
        """
        access_log: false
        debug_headers: true
        pools:
          primary: { role: primary, region: us-east, servers: [http://127.0.0.1:9000]\(databases ? ", database: main" : "") }
          eu: { role: replica, region: eu-west, servers: [http://127.0.0.1:9001]\(databases ? ", database: eu" : "") }
        regions: { default: eu-west }
        \(databases ? "databases: { main: \"postgresql://main\", eu: \"postgresql://eu\" }" : "")
        consistency:
          mode: \(mode)
          secret: a-secret-of-at-least-16-chars
          lsn_header: X-DB-LSN
        """
    }
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    @Test func timeModePinsTheWritersReadsToThePrimary() throws {
        let gateway = try EmbeddedGateway(Self.config(mode: "time"))
        #expect(try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok).response.header("x-gateway-pool") == "eu")
        let (_, written) = try gateway.send("PUT /a HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n", upstream: Self.ok)
        #expect(written.header("x-gateway-pool") == "primary")
        let token = try #require(written.header("x-gateway-consistency-token"))
        #expect(token.hasPrefix("1.t."))
        #expect(written.header("set-cookie")?.hasPrefix("gw_consistency=\(token); Path=/; Max-Age=30; HttpOnly; SameSite=Lax") == true)
        // With the token (header or cookie), reads go to the primary for sticky_for.
        let (_, byHeader) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\nX-Gateway-Consistency-Token: \(token)\r\n\r\n", upstream: Self.ok)
        #expect(byHeader.header("x-gateway-pool") == "primary")
        #expect(byHeader.header("x-gateway-consistency") == "primary-pinned")
        let (_, byCookie) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\nCookie: gw_consistency=\(token)\r\n\r\n", upstream: Self.ok)
        #expect(byCookie.header("x-gateway-pool") == "primary")
        // Without a token, the writer's identity (its address here) finds it in the store.
        #expect(try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok).response.header("x-gateway-pool") == "primary")
        // Another client is not pinned, and a forged token is no token.
        let other = try gateway.client(from: "192.0.2.77")
        let forged = token.replacingOccurrences(of: ".1.", with: ".2.").replacingOccurrences(of: "1.t.", with: "1.t.9")
        let (_, withForged) = try gateway.send("GET /a HTTP/1.1\r\nHost: api\r\nX-Gateway-Consistency-Token: \(forged)\r\n\r\n",
                                               on: other, upstream: Self.ok)
        #expect(withForged.header("x-gateway-pool") == "eu")
    }

    @Test func failedWritesGetNoToken() throws {
        let gateway = try EmbeddedGateway(Self.config(mode: "time"))
        let (_, failed) = try gateway.send("PUT /a HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n",
                                           upstream: "HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n")
        #expect(failed.status == 409)
        #expect(failed.header("x-gateway-consistency-token") == nil && failed.header("set-cookie") == nil)
    }

    @Test func lsnModeTakesThePositionTheAPIReportedAndServesReadsFromReplicasThatReachedIt() throws {
        let gateway = try EmbeddedGateway(Self.config(mode: "lsn", databases: true))
        let (_, written) = try gateway.send("PUT /a HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n",
                                            upstream: "HTTP/1.1 200 OK\r\nX-DB-LSN: 0/3000\r\nContent-Length: 0\r\n\r\n")
        let token = try #require(written.header("x-gateway-consistency-token"))
        #expect(token.hasPrefix("1.l.3000."))
        // The replica has not replayed 0/3000 (nor anything, as far as the gateway knows): the primary.
        let read = "GET /a HTTP/1.1\r\nHost: api\r\nX-Gateway-Consistency-Token: \(token)\r\n\r\n"
        #expect(try gateway.send(read, upstream: Self.ok).response.header("x-gateway-pool") == "primary")
        // Once it has, the replica.
        gateway.context.current.publishedRoutingState.replayLSN[1] = LSN(0x2FFF)
        #expect(try gateway.send(read, upstream: Self.ok).response.header("x-gateway-pool") == "primary")
        gateway.context.current.publishedRoutingState.replayLSN[1] = LSN(0x3000)
        let (_, fresh) = try gateway.send(read, upstream: Self.ok)
        #expect(fresh.header("x-gateway-pool") == "eu")
        #expect(fresh.header("x-gateway-consistency") == "replica-fresh")
        // Every replica passed it: the cookie is cleared.
        #expect(fresh.header("set-cookie")?.hasPrefix("gw_consistency=; Path=/; Max-Age=0") == true)
    }

    @Test func withoutAPositionLSNModeFallsBackToATimePin() throws {
        // No lsn_header in the response, and (in memory) no database to ask.
        let gateway = try EmbeddedGateway(Self.config(mode: "lsn", databases: true))
        let (_, written) = try gateway.send("PUT /a HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n", upstream: Self.ok)
        #expect(written.header("x-gateway-consistency-token")?.hasPrefix("1.t.") == true)
    }
}
