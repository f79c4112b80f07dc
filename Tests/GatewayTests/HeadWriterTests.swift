import Cache
import HTTPWire
import NIOCore
import Router
import Testing

@testable import Gateway

/// The two head writers: the request head the upstream gets, and the response heads the client
/// gets (`ResponseComposer`, for upstream, cached and local answers alike).
@Suite struct HeadWriterTests {
    static func parse(_ text: String, _ kind: HTTP1Parser.Kind) throws -> HTTPHead {
        var parser = HTTP1Parser(kind: kind)
        parser.append(ByteBuffer(string: text))
        guard case .head(let head) = try parser.next() else { throw TestFailure("no head in \(text)") }
        return head
    }

    struct TestFailure: Error { let message: String; init(_ message: String) { self.message = message } }

    static let requestID = RequestID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210)

    // MARK: Requests to the upstream

    func forwarded(_ text: String, trusted: Bool = false, dropConditionals: Bool = false, chunked: Bool = false) throws -> String {
        let head = try Self.parse(text, .request)
        var out = ByteBuffer()
        let requestID = head.firstValue(.xRequestID).map(RequestID.init(client:)) ?? Self.requestID
        RequestHeadWriter.write(head, context: ForwardingContext(
            peerAddress: "192.0.2.9", peerIsTrusted: trusted, requestID: requestID,
            routingFields: Array("X-Gateway-Target: replica\r\n".utf8), dropConditionals: dropConditionals, path: NormalizedPath(head.path).path),
            chunkedBody: chunked, into: &out)
        return String(buffer: out)
    }

    @Test func theUpstreamGetsForwardingFieldsAndNoHopByHopOnes() throws {
        let text = try forwarded("GET /a?b=1 HTTP/1.1\r\nHost: api\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\n"
                                 + "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Gateway-Target: primary\r\nAccept: */*\r\n\r\n")
        #expect(text.hasPrefix("GET /a?b=1 HTTP/1.1\r\nHost: api\r\n"))
        for dropped in ["Connection:", "X-Hop:", "TE:", "X-Gateway-Target: primary", "X-Forwarded-Proto: https"] {
            #expect(!text.contains(dropped), "\(dropped) was forwarded")
        }
        #expect(text.contains("Accept: */*\r\n"))
        #expect(text.contains("X-Forwarded-For: 10.0.0.1, 192.0.2.9\r\n"))
        #expect(text.contains("X-Forwarded-Proto: http\r\nX-Forwarded-Host: api\r\n"))
        #expect(text.contains("X-Request-Id: 0123456789abcdeffedcba9876543210\r\n"))
        #expect(text.contains("X-Gateway-Target: replica\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
    }

    @Test func trustedProxiesKeepTheirForwardedProtoAndHost() throws {
        let text = try forwarded("GET / HTTP/1.1\r\nHost: api\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n\r\n", trusted: true)
        #expect(text.contains("X-Forwarded-Proto: https\r\n") && text.contains("X-Forwarded-Host: shop.example\r\n"))
        #expect(!text.contains("X-Forwarded-Proto: http\r\n"))
    }

    @Test func absoluteFormTargetsBecomeOriginFormAndFetchesForTheCacheDropConditionals() throws {
        let text = try forwarded("GET http://shop.example/items?x=1 HTTP/1.1\r\nHost: other\r\nIf-None-Match: \"a\"\r\n"
                                 + "X-Request-Id: mine\r\n\r\n", dropConditionals: true)
        #expect(text.hasPrefix("GET /items?x=1 HTTP/1.1\r\nHost: shop.example\r\n"))
        #expect(!text.contains("If-None-Match"))
        // The client's own acceptable ID goes through as it was.
        #expect(text.contains("X-Request-Id: mine\r\n") && !text.contains("0123456789abcdef"))
    }

    @Test func aChunkedBodyIsDeclaredForWhatTheGatewaySends() throws {
        let text = try forwarded("POST /u HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n", chunked: true)
        #expect(text.contains("Transfer-Encoding: chunked\r\n"))
        #expect(text.components(separatedBy: "Transfer-Encoding").count == 2)
    }

    // MARK: Responses to the client

    func composed(_ head: ResponseHead, framing: ClientFraming = .asIs, persistence: ResponseComposer.Persistence = .implicit) -> String {
        var out = ByteBuffer()
        ResponseComposer.write(head, framing: framing, ResponseComposer.Context(
            exchange: nil, requestID: Self.requestID, persistence: persistence, date: "Tue, 01 Dec 2026 20:00:00 GMT",
            debugHeaders: false), into: &out)
        return String(buffer: out)
    }

    @Test func anUpstreamHeadKeepsItsFieldsLosesHopByHopOnesAndGetsTheAdditions() throws {
        let head = try Self.parse("HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n"
                                  + "Transfer-Encoding: chunked\r\n\r\n", .response)
        let text = composed(.upstream(head), framing: .chunked, persistence: .close)
        #expect(text == "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                + "X-Request-Id: 0123456789abcdeffedcba9876543210\r\nConnection: close\r\n\r\n")
        // The upstream's own X-Request-Id stands; an HTTP/1.0 keep-alive client is told.
        let withID = try Self.parse("HTTP/1.1 200 OK\r\nX-Request-Id: up\r\nContent-Length: 0\r\n\r\n", .response)
        #expect(composed(.upstream(withID), persistence: .keepAlive)
                == "HTTP/1.1 200 OK\r\nX-Request-Id: up\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
    }

    @Test func theGatewaysOwnAnswers() {
        let response = LocalResponse.error(503, "no \"server\"", requestID: Self.requestID, errorKind: nil, extraHeaders: [("Retry-After", "1")])
        let text = composed(.local(response))
        #expect(text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\nDate: Tue, 01 Dec 2026 20:00:00 GMT\r\nContent-Length: \(response.body.readableBytes)\r\n"
                               + "Content-Type: application/json\r\nRetry-After: 1\r\nX-Request-Id: 0123456789abcdeffedcba9876543210\r\n\r\n"))
        #expect(String(buffer: response.body) == "{\"error\":\"no \\\"server\\\"\",\"request_id\":\"0123456789abcdeffedcba9876543210\"}\n")
    }

    @Test func cachedAnswersAndTheir304s() {
        var block = ByteBuffer()
        block.writeString("Content-Type: application/json\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\n")
        let entry = CachedResponse(status: 200, headerBlock: block, body: ByteBuffer(string: "{}"), etag: "\"v1\"", storedAt: 1_000,
                                   initialAge: 2, freshUntil: 61_000, staleWhileRevalidateUntil: 61_000, staleIfErrorUntil: 61_000,
                                   lsn: 0, vary: [])
        let hit = composed(.cached(CachedAnswer(entry: entry, label: "HIT", notModified: false, now: 11_000)))
        #expect(hit == "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 20:00:00 GMT\r\nContent-Type: application/json\r\nETag: \"v1\"\r\n"
                + "Cache-Control: max-age=60\r\nContent-Length: 2\r\nAge: 12\r\nX-Request-Id: 0123456789abcdeffedcba9876543210\r\n\r\n")
        let notModified = composed(.cached(CachedAnswer(entry: entry, label: "HIT", notModified: true, now: 11_000)))
        #expect(notModified.hasPrefix("HTTP/1.1 304 Not Modified\r\nDate: Tue, 01 Dec 2026 20:00:00 GMT\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\nAge: 12\r\n"))
        #expect(!notModified.contains("Content-Type") && !notModified.contains("Content-Length"))
    }
}
