import NIOCore
import NIOHPACK
import Testing

@testable import Gateway

/// The requests' HPACK decoder against RFC 7541's own examples and against NIOHPACK (an
/// independent implementation: its encoder indexes and Huffman-codes, its decoder is the
/// reference for what each block says).
struct HPACKRequestDecoderTests {
    static func bytes(_ hex: String) -> ByteBuffer {
        let digits = Array(hex.filter { !$0.isWhitespace })
        return ByteBuffer(bytes: stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! })
    }

    static func pairs(_ fields: HTTP2HeaderFields) -> [String] {
        fields.fields.map { "\(fields.string($0.name))=\(fields.string($0.value))" }
    }

    /// Decodes `blocks` in order on one decoder (one connection's table).
    static func decode(_ blocks: [ByteBuffer], maxHeaderListSize: Int = 1 << 14) throws -> [[String]] {
        var decoder = HPACKRequestDecoder(maxHeaderListSize: maxHeaderListSize)
        var fields = HTTP2HeaderFields()
        return try blocks.map { block in
            try decoder.decode(block, into: &fields)
            return pairs(fields)
        }
    }

    /// RFC 7541 C.3: three requests without Huffman coding, sharing the dynamic table.
    @Test func theRFCsRequestsWithoutHuffman() throws {
        let decoded = try Self.decode([
            Self.bytes("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
            Self.bytes("8286 84be 5808 6e6f 2d63 6163 6865"),
            Self.bytes("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
        ])
        #expect(decoded == [
            [":method=GET", ":scheme=http", ":path=/", ":authority=www.example.com"],
            [":method=GET", ":scheme=http", ":path=/", ":authority=www.example.com", "cache-control=no-cache"],
            [":method=GET", ":scheme=https", ":path=/index.html", ":authority=www.example.com", "custom-key=custom-value"],
        ])
    }

    /// RFC 7541 C.4: the same requests Huffman-coded.
    @Test func theRFCsRequestsWithHuffman() throws {
        let decoded = try Self.decode([
            Self.bytes("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
            Self.bytes("8286 84be 5886 a8eb 1064 9cbf"),
            Self.bytes("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        ])
        #expect(decoded == [
            [":method=GET", ":scheme=http", ":path=/", ":authority=www.example.com"],
            [":method=GET", ":scheme=http", ":path=/", ":authority=www.example.com", "cache-control=no-cache"],
            [":method=GET", ":scheme=https", ":path=/index.html", ":authority=www.example.com", "custom-key=custom-value"],
        ])
    }

    /// Many requests from NIOHPACK's encoder on one connection — indexed, literal, Huffman,
    /// never-indexed, evictions from a small table after a size update — read as NIOHPACK's own
    /// decoder reads them.
    @Test func whatNIOHPACKEncodesReadsBackAsNIOHPACKDecodesIt() throws {
        var encoder = HPACKEncoder(allocator: ByteBufferAllocator())
        var reference = HPACKDecoder(allocator: ByteBufferAllocator())
        var decoder = HPACKRequestDecoder(maxHeaderListSize: 1 << 16)
        var fields = HTTP2HeaderFields()
        var random = SystemRandomNumberGenerator()
        let values = ["a", "/items/42?x=1", String(repeating: "long-value-", count: 30), "ünïcode ✓", "", "Mixed Case; q=0.9"]
        for round in 0..<300 {
            if round == 100 { try encoder.setDynamicTableSize(256) }
            var headers: HPACKHeaders = [":method": "GET", ":scheme": "https", ":path": "/r/\(round % 7)", ":authority": "api.test"]
            for n in 0..<Int.random(in: 0...6, using: &random) {
                let value = values.randomElement(using: &random)! + (Bool.random(using: &random) ? "\(round)" : "")
                let indexing: HPACKIndexing = [.indexable, .nonIndexable, .neverIndexed].randomElement(using: &random)!
                headers.add(name: "x-field-\(n % 3)", value: value, indexing: indexing)
            }
            headers.add(name: "cookie", value: "session=\(round % 5)")
            var block = ByteBuffer()
            try encoder.encode(headers: headers, to: &block)
            var copy = block
            let expected = try reference.decodeHeaders(from: &copy).map { "\($0.name)=\($0.value)" }
            try decoder.decode(block, into: &fields)
            #expect(Self.pairs(fields) == expected, "round \(round)")
        }
    }

    /// Whether `body` throws one of NIOHPACK's errors (what the codec counts as `compression`).
    static func refuses(_ body: () throws -> Void) -> Bool {
        do {
            try body()
            return false
        } catch {
            return error is any NIOHPACKError
        }
    }

    /// Appendix B's code applied bit by bit, padded with ones (§5.2): what the decoder's
    /// four-bit table must read back, for every symbol.
    static func huffman(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var bits: UInt64 = 0
        var count = 0
        for byte in bytes {
            let (code, length) = HPACKHuffman.codes[Int(byte)]
            bits = bits << UInt64(length) | UInt64(code)
            count += length
            while count >= 8 {
                out.append(UInt8(truncatingIfNeeded: bits >> UInt64(count - 8)))
                count -= 8
            }
        }
        if count > 0 { out.append(UInt8(truncatingIfNeeded: bits << UInt64(8 - count)) | UInt8(0xff >> count)) }
        return out
    }

    @Test func everySymbolDecodes() throws {
        var random = SystemRandomNumberGenerator()
        var inputs: [[UInt8]] = [Array(0...255), Array((0...255).reversed()), []]
        for _ in 0..<200 { inputs.append((0..<Int.random(in: 1...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }) }
        for input in inputs {
            var output: [UInt8] = []
            try Self.huffman(input).withUnsafeBytes { try HPACKHuffman.decode($0, into: &output) }
            #expect(output == input)
        }
        // Eight 'a's fill five bytes; a sixth of ones is 8 bits of padding, one too many.
        let exact = Self.huffman(Array("aaaaaaaa".utf8))
        #expect(exact.count == 5)
        var output: [UInt8] = []
        #expect(throws: HPACKHuffman.Invalid.self) { try (exact + [0xff]).withUnsafeBytes { try HPACKHuffman.decode($0, into: &output) } }
    }

    /// Each of these is a COMPRESSION_ERROR (the connection ends), under NIOHPACK's error types.
    @Test func malformedBlocksAreRefused() throws {
        let cases: [(String, String)] = [
            ("80", "index 0"),
            ("be", "an index past an empty dynamic table"),
            ("3fe21f", "a table size update over 4096"),
            ("82 20", "a table size update after a field"),
            ("20 20 20 82", "three table size updates"),
            ("40 84 ffffffff 0161", "a Huffman name with the EOS code (30 ones) in it"),
            ("40 81 18 0161", "a Huffman name ('a' is 00011) padded with zero bits"),
            ("40 82 f2b2 ff 0161", "a string longer than its block"),
            ("40 82 1fff 0161", "11 bits of padding: more than 7"),
            ("40 00 0161", "an empty literal name"),
            ("7f", "an integer cut short"),
            ("ff ff ff ff ff ff", "an integer past any table"),
        ]
        for (hex, why) in cases {
            #expect(Self.refuses { _ = try Self.decode([Self.bytes(hex)]) }, "\(why)")
        }
        // 'a' and 3 bits of padding is a name.
        #expect(try Self.decode([Self.bytes("40 81 1f 0161")]) == [["a=a"]])
        // A list over the bound: each field counts its name, value and 32.
        #expect(throws: NIOHPACKErrors.MaxHeaderListSizeViolation.self) {
            _ = try Self.decode([Self.bytes("8286 84")], maxHeaderListSize: 2 * 32 + 7 + 3 + 7 + 4 + 32)
        }
        #expect(try Self.decode([Self.bytes("8286")], maxHeaderListSize: 2 * 32 + 7 + 3 + 7 + 4) == [[":method=GET", ":scheme=http"]])
    }

    /// Entries leave the table oldest first when a new one needs the room (§4.4), and a table
    /// size update evicts down to the new size.
    @Test func entriesAreEvictedOldestFirst() throws {
        // Each entry here is 1 + 1 + 32 = 34 bytes; a 70-byte table holds two.
        var decoder = HPACKRequestDecoder(maxHeaderListSize: 1 << 14)
        var fields = HTTP2HeaderFields()
        try decoder.decode(Self.bytes("3f27 4001 6101 31 4001 6201 32 4001 6301 33 be bf"), into: &fields)
        #expect(Self.pairs(fields) == ["a=1", "b=2", "c=3", "c=3", "b=2"])
        #expect(Self.refuses { try decoder.decode(Self.bytes("c0"), into: &fields) }, "a was evicted")
        var shrunk = HPACKRequestDecoder(maxHeaderListSize: 1 << 14)
        try shrunk.decode(Self.bytes("4001 6101 31 4001 6201 32"), into: &fields)
        try shrunk.decode(Self.bytes("3f03 be"), into: &fields)  // size 34: only the newest stays
        #expect(Self.pairs(fields) == ["b=2"])
        #expect(Self.refuses { try shrunk.decode(Self.bytes("bf"), into: &fields) }, "a was evicted")
    }
}
