import HTTPWire
import NIOCore
import NIOHPACK
import Testing

@testable import Gateway

/// The gateway's response header blocks read back by NIOHPACK's decoder (an independent HPACK
/// implementation), byte for byte where the encoding is fixed.
struct HPACKResponseEncoderTests {
    static func decode(_ block: ByteBuffer) throws -> HPACKHeaders {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var block = block
        return try decoder.decodeHeaders(from: &block)
    }

    static func encode(_ head: String) throws -> ByteBuffer {
        var block = ByteBuffer()
        #expect(HPACKResponseEncoder.encode(ByteBuffer(string: head), into: &block))
        return block
    }

    @Test func fieldsComeBackAsTheyWent() throws {
        let long = String(repeating: "v", count: 300)  // a length past the 7-bit prefix
        let block = try Self.encode("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n"
                                    + "Set-Cookie: s=secret\r\nX-Long: \(long)\r\n\r\n")
        #expect(block.getInteger(at: 0, as: UInt8.self) == 0x88, ":status 200 is static entry 8")
        #expect(Array(block.getBytes(at: 1, length: 2)!) == [0x0f, 0x10], "content-type: index 31 over a 4-bit prefix")
        let decoded = try Self.decode(block)
        #expect(decoded.map { "\($0.name)=\($0.value)" }
                == [":status=200", "content-type=application/json", "x-request-id=abc", "set-cookie=s=secret", "x-long=\(long)"])
        #expect(decoded.map(\.indexable) == [.indexable, .nonIndexable, .nonIndexable, .neverIndexed, .nonIndexable])
    }

    /// The head is read as HTTP/1.1 text: the fields only one HTTP/1.1 connection means
    /// anything by (and those its Connection names) stay out (RFC 9113 §8.2.2), values lose the
    /// whitespace around them.
    @Test func connectionSpecificFieldsStayOut() throws {
        let block = try Self.encode("HTTP/1.1 103 Early Hints\r\nX-Hop: 1\r\nConnection: X-Hop , close\r\nKeep-Alive: timeout=5\r\n"
                                    + "TE: trailers\r\nTrailer: x-sum\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n"
                                    + "Transfer-Encoding: chunked\r\nLink:  </app.css>; rel=preload \t\r\nEmpty:\r\n\r\n")
        #expect(try Self.decode(block).map { "\($0.name)=\($0.value)" } == [":status=103", "link=</app.css>; rel=preload", "empty="])
    }

    /// A text without a status line is no head: nothing is written.
    @Test func aTextThatIsNoHeadIsRefused() {
        for text in ["", "HTTP/1.1\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "hello world, not a head\r\n\r\n"] {
            var block = ByteBuffer()
            #expect(!HPACKResponseEncoder.encode(ByteBuffer(string: text), into: &block) && block.readableBytes == 0, "\(text)")
        }
    }

    @Test func otherStatusesAreLiterals() throws {
        for status in ["100", "201", "301", "429", "503", "204"] {
            let block = try Self.encode("HTTP/1.1 \(status) X\r\n\r\n")
            #expect(try Self.decode(block).first(name: ":status") == status)
        }
    }

    /// After the client changed its table size, a block starts with an update to 0, which a
    /// decoder accepts whatever size it allowed.
    @Test func anEmptyTableUpdateIsAccepted() throws {
        var block = ByteBuffer(bytes: [HPACKResponseEncoder.emptyTableUpdate])
        var encoded = try Self.encode("HTTP/1.1 404 Not Found\r\n\r\n")
        block.writeBuffer(&encoded)
        #expect(try Self.decode(block).first(name: ":status") == "404")
    }

    @Test func integersPastTheirPrefix() {
        // RFC 7541 §C.1.2: 1337 in a 5-bit prefix.
        var buffer = ByteBuffer()
        HPACKResponseEncoder.writeInteger(1337, prefix: 5, flags: 0, into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0x1f, 0x9a, 0x0a])
        buffer.clear()
        HPACKResponseEncoder.writeInteger(10, prefix: 5, flags: 0x20, into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0x2a])
    }
}
