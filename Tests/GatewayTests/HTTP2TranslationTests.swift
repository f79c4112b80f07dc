import HTTPWire
import NIOCore
import NIOHPACK
import NIOHTTP2
import Testing

@testable import Gateway

/// The two translations an HTTP/2 stream goes through, without I/O: request HEADERS to the
/// HTTP/1.1 head the stream parses, and a response (its composed head, body parts, the end) to
/// HEADERS and DATA frames.
struct HTTP2TranslationTests {
    static func head(_ headers: [(String, String)], endStream: Bool = true) throws(HTTP2RequestHead.Malformed) -> (String, HTTP2RequestHead.Written) {
        var out = ByteBuffer()
        let written = try HTTP2RequestHead.write(HTTP2HeaderFields(headers), endStream: endStream, into: &out)
        return (String(buffer: out), written)
    }

    @Test func requestHeadersBecomeAnHTTP1Head() throws {
        let (text, written) = try Self.head([
            (":method", "GET"), (":scheme", "https"), (":authority", "api.test"), (":path", "/items/1?x=2"),
            ("host", "ignored.test"), ("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2"),
        ])
        // :authority is the Host; the cookies a client may split are joined again.
        #expect(text == "GET /items/1?x=2 HTTP/1.1\r\nhost: api.test\r\naccept: */*\r\ncookie: a=1; b=2\r\n\r\n")
        #expect(written.coding == .none && !written.isHead)
    }

    @Test func aBodyKeepsItsLengthOrIsChunked() throws {
        let (sized, sizedWritten) = try Self.head([(":method", "POST"), (":scheme", "https"), (":path", "/u"), (":authority", "a"), ("content-length", "5")],
                                                 endStream: false)
        #expect(sized == "POST /u HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n" && sizedWritten.coding == .length)
        let (streamed, streamedWritten) = try Self.head([(":method", "PUT"), (":scheme", "https"), (":path", "/u"), (":authority", "a")], endStream: false)
        #expect(streamed == "PUT /u HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n" && streamedWritten.coding == .chunked)
        let (_, head) = try Self.head([(":method", "HEAD"), (":scheme", "https"), (":path", "/"), (":authority", "a")])
        #expect(head.isHead)
    }

    /// Why `headers` is malformed, or nil if it is a request.
    static func refusal(_ headers: [(String, String)]) -> String? {
        do {
            _ = try head(headers)
            return nil
        } catch {
            return error.description
        }
    }

    static let valid = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a")]

    /// RFC 9113 §8.1.1, §8.2, §8.3, as NIOHTTP2 checks them (its validation is off: this is the one).
    @Test func malformedHeaderBlocksAreRefused() {
        #expect(Self.refusal(Self.valid + [("accept", "*/*"), ("te", "trailers")]) == nil)
        // A value with CR LF would smuggle a header line into the HTTP/1.1 head; NUL too.
        #expect(Self.refusal(Self.valid + [("x-a", "1\r\nx-injected: 1")])?.contains("CR, LF or NUL") == true)
        #expect(Self.refusal(Self.valid + [("x-a", "a\u{0}b")])?.contains("CR, LF or NUL") == true)
        // SP in :path would make an ambiguous request line; controls in :authority likewise.
        #expect(Self.refusal([(":method", "GET"), (":scheme", "https"), (":path", "/a HTTP/1.1"), (":authority", "a")])?.contains(":path") == true)
        #expect(Self.refusal([(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a\tb")])?.contains(":authority") == true)
        // Names: lower-case tokens only.
        #expect(Self.refusal(Self.valid + [("X-Upper", "1")])?.contains("lower-case token") == true)
        #expect(Self.refusal(Self.valid + [("x a", "1")])?.contains("lower-case token") == true)
        #expect(Self.refusal(Self.valid + [("", "1")])?.contains("empty") == true)
        // Connection-specific fields, and te other than trailers.
        for field in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
            #expect(Self.refusal(Self.valid + [(field, "x")])?.contains("connection-specific") == true, "\(field)")
        }
        #expect(Self.refusal(Self.valid + [("te", "gzip")])?.contains("te other") == true)
        // Pseudo-headers: first, once each, only the request's, all there.
        #expect(Self.refusal([(":method", "GET"), ("accept", "*/*"), (":scheme", "https"), (":path", "/")])?.contains("after a regular") == true)
        #expect(Self.refusal(Self.valid + [(":path", "/again")])?.contains("twice") == true)
        #expect(Self.refusal([(":method", "GET"), (":path", "/"), (":status", "200")])?.contains("unknown pseudo-header") == true)
        #expect(Self.refusal([(":method", "GET"), (":path", "/"), (":authority", "a")])?.contains(":scheme") == true)
        #expect(Self.refusal([(":scheme", "https"), (":path", "/"), (":authority", "a")])?.contains(":method") == true)
        #expect(Self.refusal([(":method", "GET"), (":scheme", "https"), (":path", ""), (":authority", "a")])?.contains("empty :path") == true)
        #expect(Self.refusal([(":method", "CONNECT"), (":authority", "db:5432"), (":path", "/")])?.contains("CONNECT") == true)
        // CONNECT names an authority, no path; the stream refuses it (405).
        #expect((try? Self.head([(":method", "CONNECT"), (":authority", "db:5432")]))?.0 == "CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n")
    }

    /// A response head as the composer writes it (or an upstream's interim head).
    static func response(_ text: String) throws -> ByteBuffer {
        ByteBuffer(string: text)
    }

    /// The frames of a response: its head, then `body` parts (a flush after each unless
    /// `flushes` is false), then the end unless `ends` is false.
    static func frames(_ head: String, interim: [String] = [], body: [String] = [], flushes: Bool = true,
                       ends: Bool = true) throws -> [HTTP2ResponseFrames.Frame] {
        var translator = HTTP2ResponseFrames()
        var frames: [HTTP2ResponseFrames.Frame] = []
        for text in interim { translator.interim(try response(text)) { frames.append($0) } }
        translator.head(try response(head))
        for part in body {
            translator.body(ByteBuffer(string: part)) { frames.append($0) }
            if flushes { translator.flush { frames.append($0) } }
        }
        if ends { translator.end { frames.append($0) } }
        return frames
    }

    static func block(of head: ByteBuffer) -> ByteBuffer {
        var block = ByteBuffer()
        guard HPACKResponseEncoder.encode(head, into: &block) else { return ByteBuffer(string: "not a head") }
        return block
    }

    /// A header block read back by NIOHPACK's decoder.
    static func decode(_ block: ByteBuffer) -> HPACKHeaders {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var block = block
        return (try? decoder.decodeHeaders(from: &block)) ?? ["undecodable": "block"]
    }

    static func describe(_ frames: [HTTP2ResponseFrames.Frame]) -> [String] {
        frames.map { frame in
            switch frame {
            case .headers(let head, let endStream):
                return "HEADERS " + decode(block(of: head)).map { "\($0.name)=\($0.value)" }.joined(separator: ",") + (endStream ? " END" : "")
            case .data(let bytes, let endStream):
                return "DATA \(String(buffer: bytes))" + (endStream ? " END" : "")
            }
        }
    }

    @Test func aResponseBecomesHeadersAndData() throws {
        let frames = try Self.frames("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\nX-Thing: B\r\nKeep-Alive: timeout=5\r\n\r\n",
                                     body: ["hello"], flushes: false)
        // Hop-by-hop fields go, names are lower case, END_STREAM rides on the last DATA.
        #expect(Self.describe(frames) == ["HEADERS :status=200,content-length=5,x-thing=B", "DATA hello END"])
    }

    /// Cookies are never indexed (RFC 7541 §7.1.3), not even by a proxy further on; nothing
    /// else enters a table either (the gateway uses the static table only).
    @Test func cookiesAreNeverIndexed() throws {
        let frames = try Self.frames("HTTP/1.1 200 OK\r\nSet-Cookie: s=secret\r\nX-Request-Id: abc\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")
        guard case .headers(let head, _) = frames.first else {
            Issue.record("\(frames)")
            return
        }
        let indexing = Dictionary(uniqueKeysWithValues: Self.decode(Self.block(of: head)).map { ($0.name, $0.indexable) })
        #expect(indexing["set-cookie"] == .neverIndexed && indexing["x-request-id"] == .nonIndexable && indexing["content-type"] == .nonIndexable)
    }

    /// Names are sent in lower case, by their static-table index where they have one; other
    /// statuses as literals.
    @Test func namesAndStatusesAsHTTP2HasThem() throws {
        let frames = try Self.frames("HTTP/1.1 429 Too Many Requests\r\nContent-Type: a/b\r\nX-Mixed-Case: V\r\nServer: s\r\nLast-Modified: x\r\n\r\n")
        #expect(Self.describe(frames) == ["HEADERS :status=429,content-type=a/b,x-mixed-case=V,server=s,last-modified=x END"])
        guard case .headers(let head, _) = frames.first else { return }
        let block = Self.block(of: head)
        // 429 is no static entry: literal with name index 8; content-type is index 31, past the 4-bit prefix.
        #expect(Array(block.readableBytesView.prefix(7)) == [0x08, 3, 0x34, 0x32, 0x39, 0x0f, 0x10])
    }

    /// Parts flushed as they come go at once; the end then needs an empty DATA frame. Fields
    /// named by Connection are hop-by-hop too.
    @Test func flushedPartsGoAtOnceAndTheEndIsMarked() throws {
        let frames = try Self.frames("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n",
                                     body: ["hello", " world"])
        #expect(Self.describe(frames) == ["HEADERS :status=200", "DATA hello", "DATA  world", "DATA  END"])
        // Unflushed, the last part carries the end; empty parts make no frame.
        let held = try Self.frames("HTTP/1.1 200 OK\r\n\r\n", body: ["a", "", "b"], flushes: false)
        #expect(Self.describe(held) == ["HEADERS :status=200", "DATA a", "DATA b END"])
    }

    @Test func bodilessAnswersEndOnTheirHeaders() throws {
        #expect(Self.describe(try Self.frames("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")) == ["HEADERS :status=204,x-a=1 END"])
        // A 100 Continue goes as interim HEADERS, then the final response.
        #expect(Self.describe(try Self.frames("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n", interim: ["HTTP/1.1 100 Continue\r\n\r\n"],
                                              body: ["ok"], flushes: false))
                == ["HEADERS :status=100", "HEADERS :status=201,content-length=2", "DATA ok END"])
    }

    /// A response cut short never gets END_STREAM (the stream is reset instead): what was
    /// flushed went, what was held is not marked as the end.
    @Test func anUnfinishedResponseIsNeverMarkedEnded() throws {
        var translator = HTTP2ResponseFrames()
        var frames: [HTTP2ResponseFrames.Frame] = []
        translator.head(try Self.response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
        translator.body(ByteBuffer(string: "abc")) { frames.append($0) }
        translator.flush { frames.append($0) }
        #expect(Self.describe(frames) == ["HEADERS :status=200,content-length=10", "DATA abc"] && !translator.ended)
        // Nothing after the end goes out.
        translator.end { frames.append($0) }
        translator.body(ByteBuffer(string: "late")) { frames.append($0) }
        translator.end { frames.append($0) }
        #expect(Self.describe(frames).suffix(1) == ["DATA  END"] && frames.count == 3)
    }
}
