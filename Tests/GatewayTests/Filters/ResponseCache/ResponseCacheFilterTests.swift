import NIOCore
import Testing

@testable import Gateway

/// The response cache filter in the pipeline, in memory, with the in-process store (the
/// integration tests run the same behaviours against Redis too).
@Suite struct ResponseCacheFilterTests {
    static func config(stale: String = "stale_if_error: 10m") -> String {
        """
        access_log: true
        debug_headers: true
        pools:
          primary: { servers: [http://127.0.0.1:9000] }
        routes:
          - match: { path: "/shared/{id}", methods: [GET, HEAD] }
            cache: { ttl: 1h, shared: true, \(stale) }
          - match: { path: "/mine/{id}", methods: [GET, HEAD] }
            cache: { ttl: 1h }
          - match: { path: "/shared/{id}", methods: [PUT] }
            invalidates: ["{host}/mine/{id}?"]
        """
    }
    static func ok(_ body: String, _ extra: String = "") -> String {
        "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nETag: \"e-\(body)\"\r\n\(extra)\r\n\(body)"
    }

    @Test func aMissIsStoredAndTheNextRequestIsAHit() throws {
        let gateway = try EmbeddedGateway(Self.config())
        let (upstream, miss) = try gateway.send("GET /shared/1 HTTP/1.1\r\nHost: api\r\nIf-None-Match: \"old\"\r\n\r\n",
                                                upstream: Self.ok("one", "Connection: keep-alive\r\n"))
        // A fetch that fills the cache asks for the whole response.
        #expect(upstream?.contains("If-None-Match") == false)
        #expect(miss.header("x-cache") == "MISS")
        let (again, hit) = try gateway.send("GET /shared/1 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(again == nil)
        #expect(hit.status == 200 && hit.text == "one")
        #expect(hit.header("x-cache") == "HIT")
        #expect(hit.header("age") == "0")
        #expect(hit.header("etag") == "\"e-one\"")
        #expect(hit.header("connection") == nil)
        #expect(hit.header("x-request-id") != nil)
        // Conditional: 304 with the validators only.
        let (_, notModified) = try gateway.send("GET /shared/1 HTTP/1.1\r\nHost: api\r\nIf-None-Match: W/\"e-one\"\r\n\r\n")
        #expect(notModified.status == 304 && notModified.header("etag") == "\"e-one\"" && notModified.header("content-length") == nil)
        // HEAD is answered from the entry, without the body.
        let (_, head) = try gateway.send("HEAD /shared/1 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(head.status == 200 && head.header("content-length") == "3" && head.body.isEmpty)
        let stats = gateway.context.cacheStats
        #expect(stats.misses == 1 && stats.hits == 3 && stats.notModified == 1)
        #expect(gateway.accessLog.entries.contains { $0.metadata["cache"] == "HIT" && $0.metadata["pool"] == "cache" })
    }

    @Test func perCallerEntriesAreNotShared() throws {
        let gateway = try EmbeddedGateway(Self.config())
        _ = try gateway.send("GET /mine/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer alice\r\n\r\n", upstream: Self.ok("alice"))
        let (bob, bobs) = try gateway.send("GET /mine/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer bob\r\n\r\n", upstream: Self.ok("bob"))
        #expect(bob != nil && bobs.text == "bob")
        let (none, alices) = try gateway.send("GET /mine/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer alice\r\n\r\n")
        #expect(none == nil && alices.text == "alice")
    }

    @Test func whatMustNotBeStoredIsNot() throws {
        let gateway = try EmbeddedGateway(Self.config())
        _ = try gateway.send("GET /shared/2 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("x", "Cache-Control: no-store\r\n"))
        _ = try gateway.send("GET /shared/3 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("x", "Set-Cookie: a=b\r\n"))
        let (second, _) = try gateway.send("GET /shared/2 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("y"))
        let (third, _) = try gateway.send("GET /shared/3 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("y"))
        #expect(second != nil && third != nil)
    }

    @Test func concurrentMissesMakeOneFetch() throws {
        let gateway = try EmbeddedGateway(Self.config())
        let first = try gateway.client(from: "192.0.2.11")
        let second = try gateway.client(from: "192.0.2.12")
        try first.writeInbound(ByteBuffer(string: "GET /shared/9 HTTP/1.1\r\nHost: api\r\n\r\n"))
        try second.writeInbound(ByteBuffer(string: "GET /shared/9 HTTP/1.1\r\nHost: api\r\n\r\n"))
        // One fetch went out; the second request waits for it.
        #expect(try gateway.upstreamRequests().count == 1)
        #expect(try EmbeddedGateway.readAll(second).isEmpty)
        try gateway.connector.channels[0].writeInbound(ByteBuffer(string: Self.ok("nine")))
        gateway.loop.run()
        #expect(try EmbeddedGateway.readAll(first).hasSuffix("nine"))
        let waited = try EmbeddedGateway.readAll(second)
        #expect(waited.hasPrefix("HTTP/1.1 200 OK") && waited.contains("X-Cache: HIT") && waited.hasSuffix("nine"))
        #expect(gateway.context.cacheStats.coalesced == 1)
    }

    @Test func staleIfErrorAnswersFailuresAndServerErrors() throws {
        let gateway = try EmbeddedGateway(Self.config())
        // max-age=0: stored, stale at once, within stale_if_error.
        _ = try gateway.send("GET /shared/4 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("kept", "Cache-Control: max-age=0\r\n"))
        let (asked, onError) = try gateway.send("GET /shared/4 HTTP/1.1\r\nHost: api\r\n\r\n",
                                                upstream: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown")
        #expect(asked != nil)
        #expect(onError.status == 200 && onError.text == "kept" && onError.header("x-cache") == "STALE")
        gateway.refuseUpstreamConnections()
        let (_, onRefusal) = try gateway.send("GET /shared/4 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(onRefusal.status == 200 && onRefusal.text == "kept")
        #expect(gateway.context.cacheStats.staleIfError == 2)
    }

    @Test func staleWhileRevalidateAnswersAtOnceAndRefreshesOnce() throws {
        let gateway = try EmbeddedGateway(Self.config(stale: "stale_while_revalidate: 10m"))
        _ = try gateway.send("GET /shared/5 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("old", "Cache-Control: max-age=0\r\n"))
        let (refresh, stale) = try gateway.send("GET /shared/5 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(stale.text == "old" && stale.header("x-cache") == "STALE")
        // The background refresh went upstream by itself.
        #expect(refresh?.hasPrefix("GET /shared/5 HTTP/1.1") == true)
        let (_, stillStale) = try gateway.send("GET /shared/5 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(stillStale.text == "old")
        #expect(try gateway.upstreamRequests().isEmpty)
        try gateway.connector.channels.last!.writeInbound(ByteBuffer(string: Self.ok("new")))
        gateway.loop.run()
        let (_, fresh) = try gateway.send("GET /shared/5 HTTP/1.1\r\nHost: api\r\n\r\n")
        #expect(fresh.text == "new" && fresh.header("x-cache") == "HIT")
        #expect(gateway.context.cacheStats.refreshes == 1)
        // The refresh wrote no access log line of its own.
        #expect(gateway.accessLog.entries.count == 4)
    }

    @Test func aSuccessfulWriteInvalidatesBeforeItsClientHearsOfIt() throws {
        let gateway = try EmbeddedGateway(Self.config())
        _ = try gateway.send("GET /mine/7 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("v1"))
        #expect(try gateway.send("GET /mine/7 HTTP/1.1\r\nHost: api\r\n\r\n").upstream == nil)
        // A failed write invalidates nothing.
        _ = try gateway.send("PUT /shared/7 HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n",
                             upstream: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        #expect(try gateway.send("GET /mine/7 HTTP/1.1\r\nHost: api\r\n\r\n").upstream == nil)
        let (_, written) = try gateway.send("PUT /shared/7 HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n",
                                            upstream: "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(written.status == 204)
        #expect(gateway.context.cacheStats.invalidations == 2)
        let (refetched, fresh) = try gateway.send("GET /mine/7 HTTP/1.1\r\nHost: api\r\n\r\n", upstream: Self.ok("v2"))
        #expect(refetched != nil && fresh.text == "v2")
    }
}
