import HTTPWire
import NIOCore

/// HPACK (RFC 7541) for the gateway's response header blocks, with the static table only and
/// no Huffman coding, as nginx encodes its responses: `:status` and field names by their
/// static-table index where they have one, values as literals "without indexing" (Set-Cookie
/// "never indexed", §7.1.3). Nothing enters the dynamic table, so there is no encoder state to
/// keep in step with the client's decoder; a response costs a few dozen bytes more than with
/// indexing, and no table search or Huffman pass per field.
///
/// It reads the head as HTTP/1.1 text — what `ResponseComposer` wrote, or an upstream's interim
/// head — line by line, straight into the frame: parsing the composed head again into an
/// `HTTPHead` only to encode it cost two allocations and a parse per response.
enum HPACKResponseEncoder {
    /// A dynamic table size update to 0 (§6.3): sent first after the client changed
    /// SETTINGS_HEADER_TABLE_SIZE, so its decoder knows the table it allowed stays unused.
    static let emptyTableUpdate: UInt8 = 0x20

    /// A response head (`HTTP/1.1 NNN reason`, fields, blank line) as HTTP/2 fields (RFC 9113
    /// §8.3.2, §8.2.2): `:status` first, names in lower case, none of the fields that only mean
    /// something to one HTTP/1.1 connection (nor those its `Connection` names). False, with
    /// nothing written, when the status line is not one (the composer never writes such a head).
    static func encode(_ head: ByteBuffer, into buffer: inout ByteBuffer) -> Bool {
        head.withUnsafeReadableBytes { text in
            guard let status = status(text) else { return false }
            // A literal field costs at most 3 bytes more than its line: a flag byte and two
            // 3-byte lengths in place of ": " and CRLF.
            let bound = 2 * text.count + 8
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
                var out = Output(base: memory.baseAddress!.assumingMemoryBound(to: UInt8.self))
                // A second pass only for a head with a `Connection` field (no composed one has).
                if write(text, status: status, nominated: [], into: &out) {
                    let nominated = connectionNominated(text)
                    if !nominated.isEmpty {
                        out.count = 0
                        _ = write(text, status: status, nominated: nominated, into: &out)
                    }
                }
                return out.count
            }
            return true
        }
    }

    /// The block; true when the head has a `Connection` field.
    private static func write(_ text: UnsafeRawBufferPointer, status: Int, nominated: [Range<Int>], into out: inout Output) -> Bool {
        if let index = statusIndex(status) {
            out.byte(0x80 | index)
        } else {
            out.integer(8, prefix: 4, flags: 0)
            out.byte(3)
            out.byte(UInt8(48 + status / 100))
            out.byte(UInt8(48 + status / 10 % 10))
            out.byte(UInt8(48 + status % 10))
        }
        var sawConnection = false
        forEachField(text) { name, value in
            // RFC 9113 §8.2.2: no connection-specific field (the parser's hop-by-hop names).
            let kind = KnownHeader.classify(text, name.lowerBound, name.count)
            if kind.isHopByHop {
                if kind == .connection { sawConnection = true }
                return
            }
            if !nominated.isEmpty, isNominated(text, name, nominated) { return }
            let entry = staticIndex(kind, text, name)
            let flags: UInt8 = entry == setCookie ? 0x10 : 0x00
            if entry > 0 {
                out.integer(entry, prefix: 4, flags: flags)
            } else {
                out.byte(flags)
                out.integer(name.count, prefix: 7, flags: 0)
                for i in name { out.byte(ASCII.lowercased(text[i])) }
            }
            out.integer(value.count, prefix: 7, flags: 0)
            out.bytes(UnsafeRawBufferPointer(rebasing: text[value]))
        }
        return sawConnection
    }

    /// Where one block is written: the bound is reserved before, so no check per byte.
    private struct Output {
        let base: UnsafeMutablePointer<UInt8>
        var count = 0

        mutating func byte(_ value: UInt8) {
            base[count] = value
            count += 1
        }

        mutating func bytes(_ source: UnsafeRawBufferPointer) {
            guard let from = source.baseAddress else { return }
            (base + count).update(from: from.assumingMemoryBound(to: UInt8.self), count: source.count)
            count += source.count
        }

        /// §5.1: an integer in an N-bit prefix, continued in 7-bit groups.
        mutating func integer(_ value: Int, prefix: Int, flags: UInt8) {
            let max = (1 << prefix) - 1
            guard value >= max else { return byte(flags | UInt8(value)) }
            byte(flags | UInt8(max))
            var rest = value - max
            while rest >= 128 {
                byte(UInt8(rest & 0x7f | 0x80))
                rest >>= 7
            }
            byte(UInt8(rest))
        }
    }

    /// §5.1 into a buffer (the table size update's encoding is fixed; kept for its test).
    static func writeInteger(_ value: Int, prefix: Int, flags: UInt8, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 10) { memory in
            var out = Output(base: memory.baseAddress!.assumingMemoryBound(to: UInt8.self))
            out.integer(value, prefix: prefix, flags: flags)
            return out.count
        }
    }

    // MARK: Reading the head's text

    /// `HTTP/1.x NNN`: the three digits.
    private static func status(_ text: UnsafeRawBufferPointer) -> Int? {
        guard text.count >= 12, text[0] == UInt8(ascii: "H"), text[8] == ASCII.space else { return nil }
        var status = 0
        for i in 9..<12 {
            let digit = text[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            status = status * 10 + Int(digit)
        }
        return status
    }

    /// Each field line's name and value (without the optional whitespace around it), up to the
    /// blank line; a line without a colon is skipped.
    private static func forEachField(_ text: UnsafeRawBufferPointer, _ body: (Range<Int>, Range<Int>) -> Void) {
        guard var start = memchrLF(text, from: 0, to: text.count).map({ $0 + 1 }) else { return }
        while let lf = memchrLF(text, from: start, to: text.count) {
            var end = lf
            if end > start, text[end - 1] == ASCII.cr { end -= 1 }
            if end == start { return }
            var colon = start
            while colon < end, text[colon] != UInt8(ascii: ":") { colon += 1 }
            if colon > start, colon < end {
                var valueStart = colon + 1, valueEnd = end
                while valueStart < valueEnd, ASCII.isOWS(text[valueStart]) { valueStart += 1 }
                while valueEnd > valueStart, ASCII.isOWS(text[valueEnd - 1]) { valueEnd -= 1 }
                body(start..<colon, valueStart..<valueEnd)
            }
            start = lf + 1
        }
    }

    /// The field names a `Connection` field lists (RFC 9110 §7.6.1); none without one, which is
    /// every composed head.
    private static func connectionNominated(_ text: UnsafeRawBufferPointer) -> [Range<Int>] {
        var names: [Range<Int>] = []
        forEachField(text) { name, value in
            guard ASCII.equalsLowercase(text, name.lowerBound, name.count, "connection") else { return }
            var i = value.lowerBound
            while i < value.upperBound {
                var end = i
                while end < value.upperBound, text[end] != UInt8(ascii: ",") { end += 1 }
                var a = i, b = end
                while a < b, ASCII.isOWS(text[a]) { a += 1 }
                while b > a, ASCII.isOWS(text[b - 1]) { b -= 1 }
                if a < b { names.append(a..<b) }
                i = end + 1
            }
        }
        return names
    }

    private static func isNominated(_ text: UnsafeRawBufferPointer, _ name: Range<Int>, _ nominated: [Range<Int>]) -> Bool {
        nominated.contains { listed in
            listed.count == name.count && zip(listed, name).allSatisfy { ASCII.lowercased(text[$0]) == ASCII.lowercased(text[$1]) }
        }
    }

    // MARK: Names

    private static let setCookie = 55

    /// A field's static-table name index (Appendix A), or 0 for a literal name: by the parser's
    /// classification, or by the name's bytes for those it does not classify.
    private static func staticIndex(_ kind: KnownHeader, _ text: UnsafeRawBufferPointer, _ name: Range<Int>) -> Int {
        switch kind {
        case .contentLength: return 28
        case .date: return 33
        case .setCookie: return setCookie
        case .cacheControl: return 24
        case .etag: return 34
        case .age: return 21
        case .vary: return 59
        case .other: break
        default: return 0
        }
        @inline(__always) func eq(_ literal: StaticString) -> Bool {
            ASCII.equalsLowercase(text, name.lowerBound, name.count, literal)
        }
        switch name.count {
        case 4: return eq("link") ? 45 : 0
        case 5: return eq("allow") ? 22 : 0
        case 6: return eq("server") ? 54 : 0
        case 7: return eq("expires") ? 36 : eq("refresh") ? 52 : 0
        case 8: return eq("location") ? 46 : 0
        case 11: return eq("retry-after") ? 53 : 0
        case 12: return eq("content-type") ? 31 : 0
        case 13:
            if eq("last-modified") { return 44 }
            if eq("accept-ranges") { return 18 }
            if eq("content-range") { return 30 }
            return 0
        case 16:
            if eq("content-encoding") { return 26 }
            if eq("content-language") { return 27 }
            if eq("content-location") { return 29 }
            if eq("www-authenticate") { return 61 }
            return 0
        case 19: return eq("content-disposition") ? 25 : 0
        case 25: return eq("strict-transport-security") ? 56 : 0
        case 27: return eq("access-control-allow-origin") ? 20 : 0
        default: return 0
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
}
