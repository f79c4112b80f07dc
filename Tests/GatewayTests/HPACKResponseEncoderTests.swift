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

    @Test func fieldsComeBackAsTheyWent() throws {
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: "200")
        headers.add(name: "content-type", value: "application/json")  // static name, index 31
        headers.add(name: "x-request-id", value: "abc", indexing: .nonIndexable)  // a name of its own
        headers.add(name: "set-cookie", value: "s=secret", indexing: .neverIndexed)
        headers.add(name: "x-long", value: String(repeating: "v", count: 300))  // a length past the 7-bit prefix
        var block = ByteBuffer()
        HPACKResponseEncoder.encode(headers, into: &block)
        #expect(block.getInteger(at: 0, as: UInt8.self) == 0x88, ":status 200 is static entry 8")
        #expect(Array(block.getBytes(at: 1, length: 2)!) == [0x0f, 0x10], "content-type: index 31 over a 4-bit prefix")
        let decoded = try Self.decode(block)
        #expect(decoded.map { "\($0.name)=\($0.value)" } == headers.map { "\($0.name)=\($0.value)" })
        #expect(decoded.map(\.indexable) == [.indexable, .nonIndexable, .nonIndexable, .neverIndexed, .nonIndexable])
    }

    @Test func otherStatusesAreLiterals() throws {
        for status in ["100", "201", "301", "429", "503", "204"] {
            var block = ByteBuffer()
            HPACKResponseEncoder.encode([":status": status], into: &block)
            #expect(try Self.decode(block).first(name: ":status") == status)
        }
    }

    /// After the client changed its table size, a block starts with an update to 0, which a
    /// decoder accepts whatever size it allowed.
    @Test func anEmptyTableUpdateIsAccepted() throws {
        var block = ByteBuffer(bytes: [HPACKResponseEncoder.emptyTableUpdate])
        HPACKResponseEncoder.encode([":status": "404"], into: &block)
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
