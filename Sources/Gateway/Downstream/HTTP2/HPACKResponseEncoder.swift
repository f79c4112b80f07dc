import HTTPWire
import NIOCore

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

    /// A response head as HTTP/2 fields (RFC 9113 §8.3.2, §8.2.2): `:status` first, names in
    /// lower case, none of the fields that only mean something to one HTTP/1.1 connection; from
    /// the head's bytes, without a String per field.
    static func encode(_ head: HTTPHead, into buffer: inout ByteBuffer) {
        if let index = statusIndex(head.status) {
            buffer.writeInteger(0x80 | index)
        } else {
            writeInteger(8, prefix: 4, flags: 0, into: &buffer)
            buffer.writeInteger(UInt8(3))
            let status = min(max(head.status, 0), 999)
            buffer.writeBytes([UInt8(48 + status / 100), UInt8(48 + status / 10 % 10), UInt8(48 + status % 10)])
        }
        head.raw.withUnsafeReadableBytes { bytes in
            for field in head.fields where !field.hopByHop && !field.kind.isHopByHop {
                let nameStart = Int(field.nameStart), nameCount = Int(field.nameLength)
                let flags: UInt8 = field.kind == .setCookie ? 0x10 : 0x00
                if let index = staticIndex(field.kind, bytes, nameStart, nameCount) {
                    writeInteger(index, prefix: 4, flags: flags, into: &buffer)
                } else {
                    buffer.writeInteger(flags)
                    writeInteger(nameCount, prefix: 7, flags: 0, into: &buffer)
                    for i in nameStart..<nameStart + nameCount { buffer.writeInteger(ASCII.lowercased(bytes[i])) }
                }
                let valueStart = Int(field.valueStart), valueCount = Int(field.valueLength)
                writeInteger(valueCount, prefix: 7, flags: 0, into: &buffer)
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueStart + valueCount]))
            }
        }
    }

    /// The static-table index of a response field's name: by the parser's classification, or
    /// by the name's bytes for those it does not classify.
    private static func staticIndex(_ kind: KnownHeader, _ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> Int? {
        switch kind {
        case .contentLength: return 28
        case .date: return 33
        case .setCookie: return 55
        case .cacheControl: return 24
        case .etag: return 34
        case .age: return 21
        case .vary: return 59
        case .other: break
        default: return nil
        }
        @inline(__always) func eq(_ literal: StaticString) -> Bool {
            ASCII.equalsLowercase(bytes, offset, count, literal)
        }
        switch count {
        case 4: return eq("link") ? 45 : nil
        case 5: return eq("allow") ? 22 : nil
        case 6: return eq("server") ? 54 : nil
        case 7: return eq("expires") ? 36 : eq("refresh") ? 52 : nil
        case 8: return eq("location") ? 46 : nil
        case 11: return eq("retry-after") ? 53 : nil
        case 12: return eq("content-type") ? 31 : nil
        case 13:
            if eq("last-modified") { return 44 }
            if eq("accept-ranges") { return 18 }
            if eq("content-range") { return 30 }
            return nil
        case 16:
            if eq("content-encoding") { return 26 }
            if eq("content-language") { return 27 }
            if eq("content-location") { return 29 }
            if eq("www-authenticate") { return 61 }
            return nil
        case 19: return eq("content-disposition") ? 25 : nil
        case 25: return eq("strict-transport-security") ? 56 : nil
        case 27: return eq("access-control-allow-origin") ? 20 : nil
        default: return nil
        }
    }

    /// The static entries that carry a `:status` value (Appendix A, 8–14).
    private static func statusIndex(_ status: Int) -> UInt8? {
        switch status {
        case 200: 8
        case 204: 9
        case 206: 10
        case 304: 11
        case 400: 12
        case 404: 13
        case 500: 14
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
}
