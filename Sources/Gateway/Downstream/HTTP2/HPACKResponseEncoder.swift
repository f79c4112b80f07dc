import NIOCore
import NIOHPACK

/// HPACK (RFC 7541) for the gateway's response header blocks, with the static table only and
/// no Huffman coding, as nginx encodes its responses: `:status` and field names by their
/// static-table index where they have one, values as literals "without indexing" (Set-Cookie
/// "never indexed", §7.1.3). Nothing enters the dynamic table, so there is no encoder state to
/// keep in step with the client's decoder; a response costs a few dozen bytes more than with
/// indexing, and no table search or Huffman pass per field.
enum HPACKResponseEncoder {
    /// A dynamic table size update to 0 (§6.3): sent first after the client changed
    /// SETTINGS_HEADER_TABLE_SIZE, so its decoder knows the table it allowed stays unused.
    static let emptyTableUpdate: UInt8 = 0x20

    static func encode(_ headers: HPACKHeaders, into buffer: inout ByteBuffer) {
        for (name, value, indexing) in headers {
            if name == ":status", let index = statusIndex(value) {
                buffer.writeInteger(0x80 | index)  // indexed field (§6.1)
                continue
            }
            // §6.2.2 literal without indexing (0000), §6.2.3 never indexed (0001): 4-bit name index.
            let flags: UInt8 = indexing == .neverIndexed ? 0x10 : 0x00
            if let index = nameIndex[name] {
                writeInteger(index, prefix: 4, flags: flags, into: &buffer)
            } else {
                buffer.writeInteger(flags)
                writeString(name, into: &buffer)
            }
            writeString(value, into: &buffer)
        }
    }

    /// The static entries that carry a `:status` value (Appendix A, 8–14).
    private static func statusIndex(_ value: String) -> UInt8? {
        switch value {
        case "200": 8
        case "204": 9
        case "206": 10
        case "304": 11
        case "400": 12
        case "404": 13
        case "500": 14
        default: nil
        }
    }

    /// §5.1: an integer in an N-bit prefix, continued in 7-bit groups.
    static func writeInteger(_ value: Int, prefix: Int, flags: UInt8, into buffer: inout ByteBuffer) {
        let max = (1 << prefix) - 1
        guard value >= max else {
            buffer.writeInteger(flags | UInt8(value))
            return
        }
        buffer.writeInteger(flags | UInt8(max))
        var rest = value - max
        while rest >= 128 {
            buffer.writeInteger(UInt8(rest & 0x7f | 0x80))
            rest >>= 7
        }
        buffer.writeInteger(UInt8(rest))
    }

    /// §5.2: a string literal, not Huffman-coded (H = 0).
    private static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        writeInteger(string.utf8.count, prefix: 7, flags: 0, into: &buffer)
        buffer.writeString(string)
    }

    /// The first static-table index of each field name (Appendix A), :status aside.
    static let nameIndex: [String: Int] = {
        let names = [
            ":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme", ":status", ":status", ":status",
            ":status", ":status", ":status", ":status", "accept-charset", "accept-encoding", "accept-language",
            "accept-ranges", "accept", "access-control-allow-origin", "age", "allow", "authorization", "cache-control",
            "content-disposition", "content-encoding", "content-language", "content-length", "content-location",
            "content-range", "content-type", "cookie", "date", "etag", "expect", "expires", "from", "host", "if-match",
            "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "link", "location",
            "max-forwards", "proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
            "server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent", "vary", "via",
            "www-authenticate",
        ]
        var index: [String: Int] = [:]
        for (offset, name) in names.enumerated() where index[name] == nil { index[name] = offset + 1 }
        return index
    }()
}
