import Testing
import TestSupport

@testable import Gateway

/// The response cache as an RFC 9111 shared cache (with RFC 5861 and RFC 9213), each behaviour
/// with the origin sending the headers. In memory: the origin's responses are exact bytes.
@Suite struct SharedCacheSemanticsTests {
    static func config(ttl: String = "origin", extra: String = "") -> String {
        """
        access_log: false
        debug_headers: true
        pools:
          primary: { servers: [http://127.0.0.1:9000] }
        routes:
          - match: { path: "/r/{id}", methods: [GET, HEAD] }
            cache: { ttl: \(ttl), shared: true\(extra) }
        """
    }

    static func response(_ headers: String, body: String = "body", status: String = "200 OK") -> String {
        "HTTP/1.1 \(status)\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static let get = "GET /r/1 HTTP/1.1\r\nHost: api\r\n\r\n"
    static let date = "Tue, 01 Dec 2026 20:00:00 GMT"

    /// Whether the second of two identical requests is answered from the cache.
    static func reused(_ gateway: EmbeddedGateway, first: String, request: String = get) throws -> Bool {
        _ = try gateway.send(request, upstream: first)
        let (upstream, _) = try gateway.send(request, upstream: response(""))
        return upstream == nil
    }

    // MARK: ttl: origin

    @Test func followingTheOriginOnlyExplicitOrHeuristicFreshnessIsReused() throws {
        // Nothing said, nothing to revalidate with: not reused.
        #expect(try !Self.reused(EmbeddedGateway(Self.config()), first: Self.response("")))
        #expect(try Self.reused(EmbeddedGateway(Self.config()), first: Self.response("Cache-Control: max-age=60\r\n")))
        // Heuristic freshness (RFC 9111 §4.2.2): changed ten days before its Date.
        #expect(try Self.reused(EmbeddedGateway(Self.config()),
                                first: Self.response("Date: \(Self.date)\r\nLast-Modified: Sat, 21 Nov 2026 20:00:00 GMT\r\n")))
        // An operator's ttl: responses that say nothing get it.
        #expect(try Self.reused(EmbeddedGateway(Self.config(ttl: "1h")), first: Self.response("")))
    }

    @Test func expiresAndAgeAreReadAsTheRFCSays() throws {
        // Expires an hour after Date: fresh.
        #expect(try Self.reused(EmbeddedGateway(Self.config()),
                                first: Self.response("Date: \(Self.date)\r\nExpires: Tue, 01 Dec 2026 21:00:00 GMT\r\n")))
        // An invalid Expires is already expired, even with the operator's ttl.
        #expect(try !Self.reused(EmbeddedGateway(Self.config(ttl: "1h")), first: Self.response("Expires: 0\r\n")))
        // Age as a list: its first member (7200 s of a 3600 s lifetime: stale); not read as 0.
        #expect(try !Self.reused(EmbeddedGateway(Self.config()), first: Self.response("Cache-Control: max-age=3600\r\nAge: 7200, 0\r\n")))
        #expect(try Self.reused(EmbeddedGateway(Self.config()), first: Self.response("Cache-Control: max-age=3600\r\nAge: 7, x\r\n")))
    }

    @Test func hitsCarryTheStoredDate() throws {
        let gateway = try EmbeddedGateway(Self.config())
        _ = try gateway.send(Self.get, upstream: Self.response("Date: \(Self.date)\r\nCache-Control: max-age=600\r\n"))
        let (upstream, hit) = try gateway.send(Self.get)
        #expect(upstream == nil && hit.header("x-cache") == "HIT")
        #expect(hit.headers("date") == [Self.date])
    }

    // MARK: Revalidation

    @Test func aStaleEntryIsRevalidatedAndA304RefreshesIt() throws {
        let gateway = try EmbeddedGateway(Self.config())
        _ = try gateway.send(Self.get, upstream: Self.response("ETag: \"v1\"\r\nLast-Modified: \(Self.date)\r\nCache-Control: max-age=0\r\n",
                                                                 body: "stored"))
        // Stale at once: the next request asks whether it is still good.
        let (asked, revalidated) = try gateway.send(Self.get, upstream: "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\nX-New: 1\r\n\r\n")
        #expect(asked?.contains("If-None-Match: \"v1\"\r\n") == true)
        #expect(asked?.contains("If-Modified-Since: \(Self.date)\r\n") == true)
        #expect(revalidated.status == 200 && revalidated.text == "stored")
        #expect(revalidated.header("x-cache") == "REVALIDATED")
        #expect(revalidated.header("x-new") == "1")
        // The 304's lifetime now applies: a hit, with the updated fields.
        let (none, hit) = try gateway.send(Self.get)
        #expect(none == nil && hit.header("x-cache") == "HIT" && hit.header("x-new") == "1" && hit.text == "stored")
        #expect(gateway.context.cacheStats.revalidated == 1)
        // A changed resource: its new 200 replaces the entry.
        let gateway2 = try EmbeddedGateway(Self.config())
        _ = try gateway2.send(Self.get, upstream: Self.response("ETag: \"v1\"\r\nCache-Control: max-age=0\r\n", body: "old"))
        let (_, changed) = try gateway2.send(Self.get, upstream: Self.response("ETag: \"v2\"\r\nCache-Control: max-age=60\r\n", body: "new"))
        #expect(changed.text == "new")
        #expect(try gateway2.send(Self.get).response.text == "new")
    }

    // MARK: Serving stale

    @Test func mustRevalidateAndSMaxAgeForbidServingStale() throws {
        let failing = Self.response("", body: "down", status: "503 Service Unavailable")
        for directives in ["max-age=0, must-revalidate", "max-age=0, proxy-revalidate", "s-maxage=0"] {
            let gateway = try EmbeddedGateway(Self.config(ttl: "1h", extra: ", stale_if_error: 10m, stale_while_revalidate: 10m"))
            _ = try gateway.send(Self.get, upstream: Self.response("ETag: \"v1\"\r\nCache-Control: \(directives)\r\n", body: "stored"))
            let (_, answer) = try gateway.send(Self.get, upstream: failing)
            #expect(answer.status == 503, "\(directives)")
        }
        // Without them, the route's stale_if_error serves the entry.
        let gateway = try EmbeddedGateway(Self.config(ttl: "1h", extra: ", stale_if_error: 10m"))
        _ = try gateway.send(Self.get, upstream: Self.response("Cache-Control: max-age=0\r\n", body: "stored"))
        #expect(try gateway.send(Self.get, upstream: failing).response.text == "stored")
    }

    @Test func theResponsesOwnStaleDirectivesCountUnderTheRoutesCeiling() throws {
        let failing = Self.response("", body: "down", status: "503 Service Unavailable")
        // The origin's stale-if-error, no ceiling set: honoured.
        let open = try EmbeddedGateway(Self.config())
        _ = try open.send(Self.get, upstream: Self.response("Cache-Control: max-age=0, stale-if-error=60\r\n", body: "stored"))
        #expect(try open.send(Self.get, upstream: failing).response.text == "stored")
        // A ceiling of 0 s: not honoured.
        let capped = try EmbeddedGateway(Self.config(extra: ", stale_if_error: 0s"))
        _ = try capped.send(Self.get, upstream: Self.response("Cache-Control: max-age=0, stale-if-error=60\r\n", body: "stored"))
        #expect(try capped.send(Self.get, upstream: failing).response.status == 503)
        // The origin's stale-while-revalidate: answered at once while one refresh runs.
        let swr = try EmbeddedGateway(Self.config())
        _ = try swr.send(Self.get, upstream: Self.response("Cache-Control: max-age=0, stale-while-revalidate=60\r\n", body: "stored"))
        let (refresh, stale) = try swr.send(Self.get)
        #expect(stale.header("x-cache") == "STALE" && stale.text == "stored" && refresh != nil)
    }

    // MARK: Authorization (RFC 9111 §3.5)

    @Test func sharedEntriesAndAuthorization() throws {
        let withToken = "GET /r/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer t\r\n\r\n"
        // Not stored from a request with Authorization unless the response allows it.
        #expect(try !Self.reused(EmbeddedGateway(Self.config()), first: Self.response("Cache-Control: max-age=60\r\n"), request: withToken))
        #expect(try Self.reused(EmbeddedGateway(Self.config()), first: Self.response("Cache-Control: public, max-age=60\r\n"), request: withToken))
        #expect(try Self.reused(EmbeddedGateway(Self.config()), first: Self.response("Cache-Control: s-maxage=60\r\n"), request: withToken))
        // Not served to a request with Authorization unless the response allowed it.
        let gateway = try EmbeddedGateway(Self.config())
        _ = try gateway.send(Self.get, upstream: Self.response("Cache-Control: max-age=60\r\n"))
        #expect(try gateway.send(Self.get).upstream == nil)
        #expect(try gateway.send(withToken, upstream: Self.response("Cache-Control: max-age=60\r\n")).upstream != nil)
    }

    // MARK: CDN-Cache-Control (RFC 9213) and the gateway's own

    @Test func targetedFieldsTakePrecedenceAndTheGatewaysIsNotPassedOn() throws {
        let gateway = try EmbeddedGateway(Self.config())
        let (_, first) = try gateway.send(Self.get, upstream: Self.response("Cache-Control: no-store\r\nGateway-Cache-Control: max-age=60\r\n"))
        #expect(first.header("gateway-cache-control") == nil)
        #expect(first.header("cache-control") == "no-store")
        let (none, hit) = try gateway.send(Self.get)
        #expect(none == nil && hit.header("cache-control") == "no-store" && hit.header("gateway-cache-control") == nil)
        // CDN-Cache-Control over Cache-Control, and kept for the CDNs behind.
        let cdn = try EmbeddedGateway(Self.config())
        let (_, kept) = try cdn.send(Self.get, upstream: Self.response("Cache-Control: max-age=0\r\nCDN-Cache-Control: max-age=60\r\n"))
        #expect(kept.header("cdn-cache-control") == "max-age=60")
        #expect(try cdn.send(Self.get).upstream == nil)
        // The field's name is configurable.
        let named = try EmbeddedGateway(Self.config().replacingOccurrences(of: "access_log: false", with: "access_log: false\ncache: { control_header: Edge-Control }"))
        #expect(try Self.reused(named, first: Self.response("Cache-Control: no-store\r\nEdge-Control: max-age=60\r\n")))
    }

    // MARK: Ranges

    @Test func rangesOfACachedEntry() throws {
        let gateway = try EmbeddedGateway(Self.config())
        let range = { (spec: String) in "GET /r/1 HTTP/1.1\r\nHost: api\r\nRange: \(spec)\r\n\r\n" }
        // A miss is forwarded with its Range and not stored.
        let (forwarded, _) = try gateway.send(range("bytes=0-1"), upstream: Self.response("Cache-Control: max-age=60\r\n", body: "parts", status: "206 Partial Content"))
        #expect(forwarded?.contains("Range: bytes=0-1\r\n") == true)
        _ = try gateway.send(Self.get, upstream: Self.response("ETag: \"e\"\r\nCache-Control: max-age=60\r\n", body: "0123456789"))
        let (none, partial) = try gateway.send(range("bytes=2-4"))
        #expect(none == nil && partial.status == 206 && partial.text == "234")
        #expect(partial.header("content-range") == "bytes 2-4/10" && partial.header("content-length") == "3")
        #expect(try gateway.send(range("bytes=-3")).response.text == "789")
        #expect(try gateway.send(range("bytes=7-")).response.text == "789")
        let beyond = try gateway.send(range("bytes=20-")).response
        #expect(beyond.status == 416 && beyond.header("content-range") == "bytes */10")
        // Several ranges, or If-Range naming another version: the whole entry.
        #expect(try gateway.send(range("bytes=0-1,3-4")).response.status == 200)
        let otherVersion = try gateway.send("GET /r/1 HTTP/1.1\r\nHost: api\r\nRange: bytes=0-1\r\nIf-Range: \"other\"\r\n\r\n").response
        #expect(otherVersion.status == 200 && otherVersion.text == "0123456789")
        let sameVersion = try gateway.send("GET /r/1 HTTP/1.1\r\nHost: api\r\nRange: bytes=0-1\r\nIf-Range: \"e\"\r\n\r\n").response
        #expect(sameVersion.status == 206 && sameVersion.text == "01")
    }
}
