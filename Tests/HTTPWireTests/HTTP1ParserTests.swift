import NIOCore
import Router
import Testing

@testable import HTTPWire

/// What a parser produced, flattened for comparison.
enum ParsedEvent: Equatable {
    case head(String)
    case body(String)
    case end
    case error(HTTPParseError)
}

/// Feeds `input` in pieces of `step` bytes (0 = all at once) and collects every event.
func parseAll(
    _ input: String, kind: HTTP1Parser.Kind = .request, step: Int = 0, maxHead: Int = 32 * 1024,
    respondingToHead: Bool = false, finish: Bool = false
) -> (events: [ParsedEvent], heads: [HTTPHead]) {
    var parser = HTTP1Parser(kind: kind, maxHeadBytes: maxHead, maxHeaderCount: 16)
    parser.respondingToHead = respondingToHead
    var events: [ParsedEvent] = []
    var heads: [HTTPHead] = []
    var body = ""
    let bytes = Array(input.utf8)
    let pieces: [ArraySlice<UInt8>] =
        step == 0 ? [bytes[...]] : stride(from: 0, to: bytes.count, by: step).map { bytes[$0..<min($0 + step, bytes.count)] }
    func drain(_ pull: (inout HTTP1Parser) throws(HTTPParseError) -> HTTP1Parser.Event) -> Bool {
        while true {
            do {
                switch try pull(&parser) {
                case .head(let head):
                    heads.append(head)
                    events.append(.head("\(head.isRequest ? "\(head.method) \(head.target)" : "\(head.status)")"))
                case .body(let chunk):
                    body += String(buffer: chunk)
                case .end:
                    if !body.isEmpty { events.append(.body(body)); body = "" }
                    events.append(.end)
                case .needMoreData:
                    return true
                }
            } catch {
                if !body.isEmpty { events.append(.body(body)); body = "" }
                events.append(.error(error))
                return false
            }
        }
    }
    for piece in pieces {
        parser.append(ByteBuffer(bytes: piece))
        if !drain({ (p: inout HTTP1Parser) throws(HTTPParseError) in try p.next() }) { return (events, heads) }
    }
    if finish {
        _ = drain({ (p: inout HTTP1Parser) throws(HTTPParseError) in
            let event = try p.finish()
            if case .end = event { return .end }
            return .needMoreData
        })
    }
    if !body.isEmpty { events.append(.body(body)) }
    return (events, heads)
}

@Suite struct HTTP1ParserTests {
    @Test(arguments: [0, 1, 2, 7])
    func simpleGet(step: Int) {
        let (events, heads) = parseAll("GET /api/users/7?x=1 HTTP/1.1\r\nHost: a.example\r\nX-Y:  v  \r\n\r\n", step: step)
        #expect(events == [.head("GET /api/users/7?x=1"), .end])
        let head = heads[0]
        #expect(head.path == "/api/users/7")
        #expect(head.query == "x=1")
        #expect(head.keepAlive)
        #expect(head.framing == .none)
        #expect(head.firstValue(named: "x-y") == "v")
        #expect(head.firstValue(.host) == "a.example")
        #expect(head.fields.count == 2)
    }

    @Test(arguments: [0, 1, 3])
    func contentLengthBodyAndPipelining(step: Int) {
        let input = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        let (events, _) = parseAll(input, step: step)
        #expect(events == [.head("POST /a"), .body("hello"), .end, .head("GET /b"), .end])
    }

    @Test(arguments: [0, 1, 5])
    func chunkedBodyWithExtensionsAndTrailers(step: Int) {
        let input = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
        let (events, heads) = parseAll(input, step: step)
        #expect(events == [.head("POST /c"), .body("hello world"), .end, .head("GET /next"), .end])
        #expect(heads[0].framing == .chunked)
    }

    @Test func bareLineFeedsAndLeadingEmptyLines() {
        let (events, _) = parseAll("\r\nGET / HTTP/1.1\nHost: h\n\n")
        #expect(events == [.head("GET /"), .end])
    }

    @Test func smugglingShapesAreRefused() {
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").events
            == [.error(.conflictingFraming)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").events
            == [.error(.invalidContentLength)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n").events
            == [.error(.invalidContentLength)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n").events
            == [.error(.invalidContentLength)])
        #expect(parseAll("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n").events == [.error(.malformedHeader)])
        #expect(parseAll("GET / HTTP/1.1\r\nHost : h\r\n\r\n").events == [.error(.malformedHeader)])
        #expect(parseAll("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n").events == [.error(.malformedHeader)])
        #expect(parseAll("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").events == [.error(.conflictingFraming)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").events
            == [.error(.malformedHeader)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").events
            == [.error(.unsupportedTransferEncoding)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").events
            == [.head("POST /"), .error(.malformedChunk)])
        #expect(parseAll("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY").events
            == [.head("POST /"), .body("ab"), .error(.malformedChunk)])
    }

    @Test func identicalContentLengthsAreOneLength() {
        let (events, heads) = parseAll("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nok")
        #expect(events == [.head("POST /"), .body("ok"), .end])
        #expect(heads[0].framing == .length(2))
    }

    @Test func startLineAndHostErrors() {
        #expect(parseAll("GET / HTTP/2.0\r\nHost: h\r\n\r\n").events == [.error(.unsupportedVersion)])
        #expect(parseAll("GET  / HTTP/1.1\r\nHost: h\r\n\r\n").events == [.error(.malformedStartLine)])
        #expect(parseAll("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n").events == [.error(.malformedStartLine)])
        #expect(parseAll("hello\r\n\r\n").events == [.error(.malformedStartLine)])
        #expect(parseAll("GET / HTTP/1.1\r\n\r\n").events == [.error(.invalidHost)])
        #expect(parseAll("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").events == [.error(.invalidHost)])
        #expect(parseAll("GET / HTTP/1.0\r\n\r\n").events == [.head("GET /"), .end])
    }

    @Test func limits() {
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        #expect(parseAll(big, maxHead: 100).events == [.error(.headTooLarge)])
        #expect(parseAll(big, step: 10, maxHead: 100).events == [.error(.headTooLarge)])
        // An endless head without a blank line is refused once it passes the limit.
        #expect(parseAll("GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 40), step: 16, maxHead: 100).events
            == [.error(.headTooLarge)])
        let many = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<20).map { "X\($0): y\r\n" }.joined() + "\r\n"
        #expect(parseAll(many).events == [.error(.tooManyHeaders)])
    }

    @Test func persistence() {
        #expect(parseAll("GET / HTTP/1.0\r\n\r\n").heads[0].keepAlive == false)
        #expect(parseAll("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").heads[0].keepAlive == true)
        #expect(parseAll("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").heads[0].keepAlive == false)
    }

    @Test func connectionNominatesHopByHopFieldsButNotFraming() {
        let head = parseAll("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Secret, Host\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n").heads[0]
        let dropped = head.fields.filter(\.hopByHop).map { head.name(of: $0) }
        #expect(dropped == ["Connection", "X-Secret"])
    }

    @Test func responses() {
        #expect(parseAll("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", kind: .response).events
            == [.head("204"), .end, .head("200"), .body("ok"), .end])
        // Interim 100 Continue, then the final response.
        #expect(parseAll("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", kind: .response).events
            == [.head("100"), .head("201"), .end])
        // The response to HEAD has no body whatever its Content-Length.
        #expect(parseAll("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", kind: .response, respondingToHead: true).events
            == [.head("200"), .end])
        // No length: the body runs until the connection closes.
        let (untilClose, heads) = parseAll("HTTP/1.0 200 OK\r\n\r\nall of it", kind: .response, finish: true)
        #expect(untilClose == [.head("200"), .body("all of it"), .end])
        #expect(heads[0].framing == .untilClose && heads[0].keepAlive == false)
        // Reason phrase is optional.
        #expect(parseAll("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", kind: .response).events == [.head("200"), .end])
    }

    @Test func responseWithBothFramingsUsesChunkedAndIsNotReused() {
        let (events, heads) = parseAll(
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", kind: .response)
        #expect(events == [.head("200"), .body("ok"), .end])
        #expect(heads[0].keepAlive == false)
        #expect(heads[0].fields.first { $0.kind == .contentLength }?.hopByHop == true)
    }

    @Test func truncatedMessages() {
        #expect(parseAll("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", kind: .response, finish: true).events
            == [.head("200"), .body("abc"), .error(.truncatedMessage)])
        #expect(parseAll("GET / HTTP/1.1\r\nHo", finish: true).events == [.error(.truncatedMessage)])
    }

    @Test func hostsMustBeHostsAsRFC3986SaysSo() {
        for good in ["api.example.com", "api:8080", "[::1]:8080", "[2001:db8::1]", "10.0.0.1", "xn--bcher-kva.example", "a%41b", "host:", ""] {
            #expect(parseAll("GET / HTTP/1.1\r\nHost: \(good)\r\n\r\n").events == [.head("GET /"), .end], "\(good)")
        }
        for bad in ["edge.test/cached", "a b", "user@host", "a?b", "a#b", "[::1", "[zz::1]", "host:80a", "host:1:2", "a%zz", "a\\b", "\"quoted\""] {
            #expect(parseAll("GET / HTTP/1.1\r\nHost: \(bad)\r\n\r\n").events == [.error(.invalidHost)], "\(bad)")
        }
        // The authority of an absolute-form target replaces Host: it is held to the same rules.
        #expect(parseAll("GET http://user@api/x HTTP/1.1\r\nHost: api\r\n\r\n").events == [.error(.invalidHost)])
        #expect(parseAll("GET http:///x HTTP/1.1\r\nHost: api\r\n\r\n").events == [.error(.invalidHost)])
        #expect(parseAll("GET ftp://api/x HTTP/1.1\r\nHost: api\r\n\r\n").events == [.error(.malformedStartLine)])
        #expect(parseAll("GET api/x HTTP/1.1\r\nHost: api\r\n\r\n").events == [.error(.malformedStartLine)])
        // Responses are not held to it.
        #expect(parseAll("HTTP/1.1 200 OK\r\nHost: a b\r\nContent-Length: 0\r\n\r\n", kind: .response).events.first == .head("200"))
    }

    @Test func absoluteFormTarget() {
        let head = parseAll("GET http://api.example:8080/v1/x?q=2 HTTP/1.1\r\nHost: other\r\n\r\n").heads[0]
        #expect(head.path == "/v1/x")
        #expect(head.absoluteFormAuthority == "api.example:8080")
        #expect(head.host == "api.example:8080")
        #expect(parseAll("GET http://api.example HTTP/1.1\r\nHost: x\r\n\r\n").heads[0].path == "/")
    }

    @Test func methodsAreClassified() {
        #expect(parseAll("PATCH / HTTP/1.1\r\nHost: h\r\n\r\n").heads[0].method == .patch)
        #expect(parseAll("PURGE / HTTP/1.1\r\nHost: h\r\n\r\n").heads[0].method == .other("PURGE"))
    }

    // MARK: Reused heads

    /// The next event of `parser`, which must be a head.
    private func nextHead(_ parser: inout HTTP1Parser) throws -> HTTPHead {
        guard case .head(let head) = try parser.next() else {
            Issue.record("expected a head")
            throw HTTPParseError.malformedStartLine
        }
        return head
    }

    @Test func aHeadNoOneHoldsIsParsedIntoAgainAndReadsAsNew() throws {
        var parser = HTTP1Parser(kind: .request)
        parser.append(ByteBuffer(string: "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nX-One: 1\r\nX-Two: 2\r\n\r\nhi"))
        var first: HTTPHead? = try nextHead(&parser)
        let firstID = ObjectIdentifier(first!)
        #expect(first!.expectsContinue)
        first = nil
        guard case .body = try parser.next(), case .end = try parser.next() else {
            Issue.record("expected the body and its end")
            return
        }
        parser.append(ByteBuffer(string: "GET /next?q=1 HTTP/1.0\r\nHost: b\r\n\r\n"))
        let second = try nextHead(&parser)
        // The same object, read as if it were new: nothing of the first request is left.
        #expect(ObjectIdentifier(second) == firstID)
        #expect(second.method == .get)
        #expect(second.target == "/next?q=1")
        #expect(second.minorVersion == 0)
        #expect(!second.keepAlive)
        #expect(!second.expectsContinue)
        #expect(second.framing == .none)
        #expect(second.fields.count == 1)
        #expect(second.firstValue(.host) == "b")
        #expect(second.firstField(.contentLength) == nil)
    }

    @Test func aHeadSomeoneKeepsIsNeverWrittenOver() throws {
        var parser = HTTP1Parser(kind: .response)
        parser.append(ByteBuffer(string: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-Kept: yes\r\n\r\n"))
        let kept = try nextHead(&parser)
        guard case .end = try parser.next() else {
            Issue.record("expected the end")
            return
        }
        parser.append(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        let next = try nextHead(&parser)
        #expect(next !== kept)
        #expect(next.status == 200)
        // What the holder has is unchanged.
        #expect(kept.status == 404)
        #expect(kept.description.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(kept.firstValue(named: "X-Kept") == "yes")
        #expect(kept.fields.count == 2)
    }
}
