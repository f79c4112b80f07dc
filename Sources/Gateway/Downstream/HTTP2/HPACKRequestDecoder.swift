import NIOCore
import NIOHPACK

/// HPACK (RFC 7541) for the requests' header blocks, decoded into bytes (`HTTP2HeaderFields`):
/// the connection's dynamic table keeps each entry's bytes, an indexed field — most of every
/// request after a client's first — is copied from there, nothing becomes a String.
/// NIOHPACK's decoder made two Strings per field and an array per block, which
/// `HTTP2RequestHead` then wrote out as bytes again.
///
/// Errors are connection errors of type COMPRESSION_ERROR (§2.3, RFC 9113 §4.3), under
/// NIOHPACK's error types (`NIOHPACKError`), so they are counted as before.
struct HPACKRequestDecoder {
    struct Failure: NIOHPACKError, CustomStringConvertible {
        var description: String
    }

    /// SETTINGS_HEADER_TABLE_SIZE: the gateway announces none, so the protocol's default binds
    /// the client's encoder.
    static let maxTableSize = 4096

    /// Bytes a block may decode to (each field's name, value and 32, §4.1).
    var maxHeaderListSize: Int

    /// The bound until the client acknowledged the gateway's SETTINGS (NIOHPACK's default).
    static let defaultMaxHeaderListSize = 1 << 14

    private struct Entry {
        /// The name, then the value.
        var bytes: [UInt8]
        var nameCount: Int

        var size: Int { bytes.count + 32 }
    }

    /// Newest last; index 62 is the newest (§2.3.3).
    private var entries = CircularBuffer<Entry>()
    private var tableSize = 0
    private var allowedTableSize = HPACKRequestDecoder.maxTableSize

    init(maxHeaderListSize: Int) {
        self.maxHeaderListSize = maxHeaderListSize
    }

    /// Decodes one complete block into `fields` (emptied first).
    mutating func decode(_ block: ByteBuffer, into fields: inout HTTP2HeaderFields) throws {
        fields.removeAll()
        try block.withUnsafeReadableBytes { bytes in
            try decode(bytes, into: &fields)
        }
    }

    private mutating func decode(_ bytes: UnsafeRawBufferPointer, into fields: inout HTTP2HeaderFields) throws {
        var i = 0
        var listSize = 0
        var sizeUpdates = 0
        while i < bytes.count {
            let first = bytes[i]
            if first & 0x80 != 0 {
                // §6.1: an indexed field.
                let index = try integer(bytes, &i, prefix: 7)
                guard index != 0 else { throw NIOHPACKErrors.ZeroHeaderIndex() }
                try appendEntry(index, nameOnly: false, to: &fields)
            } else if first & 0xE0 == 0x20 {
                // §6.3: a table size update, only at the start of a block, at most two (§4.2).
                sizeUpdates += 1
                guard fields.count == 0, sizeUpdates <= 2 else { throw Failure(description: "a misplaced dynamic table size update") }
                let size = try integer(bytes, &i, prefix: 5)
                guard size <= Self.maxTableSize else { throw Failure(description: "a dynamic table size of \(size) over \(Self.maxTableSize)") }
                allowedTableSize = size
                evict(toFit: 0)
                continue
            } else {
                // §6.2: a literal, added to the table (01), or not (0000, and 0001 never indexed).
                let indexing = first & 0xC0 == 0x40
                let nameIndex = try integer(bytes, &i, prefix: indexing ? 6 : 4)
                let nameStart = fields.end
                if nameIndex == 0 {
                    try string(bytes, &i, into: &fields)
                    guard fields.end > nameStart else { throw NIOHPACKErrors.EmptyLiteralHeaderFieldName() }
                } else {
                    try appendEntry(nameIndex, nameOnly: true, to: &fields)
                }
                let valueStart = fields.end
                try string(bytes, &i, into: &fields)
                fields.closeField(nameStart: nameStart, valueStart: valueStart)
                if indexing {
                    let added = Array(fields.bytes[nameStart..<fields.end])
                    insert(Entry(bytes: added, nameCount: valueStart - nameStart))
                }
            }
            let field = fields.fields[fields.count - 1]
            listSize += field.name.count + field.value.count + 32
            guard listSize <= maxHeaderListSize else { throw NIOHPACKErrors.MaxHeaderListSizeViolation() }
        }
    }

    /// §5.1: an integer in an N-bit prefix, continued in 7-bit groups (bounded well below
    /// overflow: no length or index here comes near 2^28).
    private func integer(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, prefix: Int) throws -> Int {
        let max = (1 << prefix) - 1
        var value = Int(bytes[i]) & max
        i += 1
        guard value == max else { return value }
        var shift = 0
        while true {
            guard i < bytes.count else { throw Failure(description: "an integer cut short") }
            let byte = bytes[i]
            i += 1
            value += Int(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            guard shift < 28 else { throw NIOHPACKErrors.UnrepresentableInteger() }
        }
    }

    /// §5.2: a string literal, Huffman-coded or not, appended to `fields`.
    private func string(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, into fields: inout HTTP2HeaderFields) throws {
        guard i < bytes.count else { throw Failure(description: "a string literal cut short") }
        let huffman = bytes[i] & 0x80 != 0
        let length = try integer(bytes, &i, prefix: 7)
        guard length <= bytes.count - i else { throw Failure(description: "a string literal longer than its block") }
        let source = UnsafeRawBufferPointer(rebasing: bytes[i..<i + length])
        i += length
        if huffman {
            do throws(HPACKHuffman.Invalid) {
                try fields.appendHuffman(source)
            } catch {
                throw Failure(description: "an invalid Huffman-coded string")
            }
        } else {
            fields.appendBytes(source)
        }
    }

    /// The name (and value) of a static or dynamic table entry (§2.3.3).
    private func appendEntry(_ index: Int, nameOnly: Bool, to fields: inout HTTP2HeaderFields) throws {
        if index < HPACKStaticTable.count {
            let entry = HPACKStaticTable.ranges[index]
            HPACKStaticTable.bytes.withUnsafeBytes { all in
                let nameStart = fields.end
                fields.appendBytes(UnsafeRawBufferPointer(rebasing: all[entry.name]))
                guard !nameOnly else { return }
                let valueStart = fields.end
                fields.appendBytes(UnsafeRawBufferPointer(rebasing: all[entry.value]))
                fields.closeField(nameStart: nameStart, valueStart: valueStart)
            }
            return
        }
        let position = entries.count - 1 - (index - HPACKStaticTable.count)
        guard position >= 0 else { throw Failure(description: "header index \(index) past the table") }
        let entry = entries[offset: position]
        entry.bytes.withUnsafeBytes { all in
            let nameCount = entry.nameCount
            if nameOnly {
                fields.appendBytes(UnsafeRawBufferPointer(rebasing: all[..<nameCount]))
            } else {
                let nameStart = fields.end
                fields.appendBytes(all)
                fields.closeField(nameStart: nameStart, valueStart: nameStart + nameCount)
            }
        }
    }

    /// §4.4: older entries go to make room; one larger than the whole table empties it.
    private mutating func insert(_ entry: Entry) {
        guard entry.size <= allowedTableSize else {
            entries.removeAll()
            tableSize = 0
            return
        }
        evict(toFit: entry.size)
        entries.append(entry)
        tableSize += entry.size
    }

    private mutating func evict(toFit size: Int) {
        while tableSize + size > allowedTableSize, let oldest = entries.first {
            tableSize -= oldest.size
            entries.removeFirst()
        }
    }
}

/// RFC 7541 Appendix A, as bytes in one array; index 0 is unused.
enum HPACKStaticTable {
    private static let pairs: [(String, String)] = [
        ("", ""), (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""), ("etag", ""),
        ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""),
        ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""),
        ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""),
        ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""), ("set-cookie", ""),
        ("strict-transport-security", ""), ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""),
        ("www-authenticate", ""),
    ]

    static let count = pairs.count
    static let bytes: [UInt8] = pairs.flatMap { Array($0.0.utf8) + Array($0.1.utf8) }
    static let ranges: [(name: Range<Int>, value: Range<Int>)] = {
        var offset = 0
        return pairs.map { name, value in
            let nameEnd = offset + name.utf8.count
            defer { offset = nameEnd + value.utf8.count }
            return (offset..<nameEnd, nameEnd..<nameEnd + value.utf8.count)
        }
    }()
}
