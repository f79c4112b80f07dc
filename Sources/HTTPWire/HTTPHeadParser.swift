import NIOCore
import Router

/// Turns the bytes of one complete head into an `HTTPHead`: validates the start line and every
/// field, classifies the fields the gateway acts on, and decides the body framing and
/// persistence (RFC 9112 §6.3, §9.3).
public enum HTTPHeadParser {
    /// `reusing`: a head nothing else holds any more (`isKnownUniquelyReferenced`), whose object
    /// and field storage are written over instead of allocated again.
    public static func parse(_ raw: ByteBuffer, kind: HTTP1Parser.Kind, maxHeaderCount: Int,
                             reusing spare: HTTPHead? = nil) throws(HTTPParseError) -> HTTPHead {
        let result: Result<HTTPHead, HTTPParseError> = raw.withUnsafeReadableBytes { bytes in
            do throws(HTTPParseError) {
                return .success(try parse(bytes, raw: raw, kind: kind, maxHeaderCount: maxHeaderCount, spare: spare))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func parse(
        _ bytes: UnsafeRawBufferPointer, raw: ByteBuffer, kind: HTTP1Parser.Kind, maxHeaderCount: Int, spare: HTTPHead?
    ) throws(HTTPParseError) -> HTTPHead {
        // Start line.
        guard let firstLF = memchrLF(bytes, from: 0, to: bytes.count) else { throw .malformedStartLine }
        let startLineEnd = try lineEnd(bytes, lf: firstLF, lineStart: 0)
        let head: HTTPHead
        switch kind {
        case .request: head = try parseRequestLine(bytes, end: startLineEnd, raw: raw, spare: spare)
        case .response: head = try parseStatusLine(bytes, end: startLineEnd, raw: raw, spare: spare)
        }

        // Fields.
        var fields: ContiguousArray<HeaderField>
        if spare != nil {
            // Taken out, so that it is the only reference to its storage and keeps it.
            fields = head.fields
            head.fields = []
            fields.removeAll(keepingCapacity: true)
        } else {
            fields = ContiguousArray<HeaderField>()
            fields.reserveCapacity(16)
        }
        var lineStart = firstLF + 1
        while lineStart < bytes.count {
            guard let lf = memchrLF(bytes, from: lineStart, to: bytes.count) else { throw .malformedHeader }
            let end = try lineEnd(bytes, lf: lf, lineStart: lineStart)
            if end == lineStart { break }  // the blank line
            guard fields.count < maxHeaderCount else { throw .tooManyHeaders }
            fields.append(try parseField(bytes, start: lineStart, end: end))
            lineStart = lf + 1
        }
        head.fields = fields
        try decideFraming(head, bytes, kind: kind)
        return head
    }

    /// The end of the line's content: LF, minus one CR before it. A CR anywhere else is refused.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, lf: Int, lineStart: Int) throws(HTTPParseError) -> Int {
        if lf > lineStart && bytes[lf - 1] == ASCII.cr { return lf - 1 }
        return lf
    }

    private static func parseRequestLine(_ bytes: UnsafeRawBufferPointer, end: Int, raw: ByteBuffer,
                                         spare: HTTPHead?) throws(HTTPParseError) -> HTTPHead {
        var i = 0
        while i < end, ASCII.isTokenChar(bytes[i]) { i += 1 }
        guard i > 0, i < end, bytes[i] == ASCII.space else { throw .malformedStartLine }
        let methodRange = 0..<i
        i += 1
        let targetStart = i
        while i < end, ASCII.isTargetChar(bytes[i]) { i += 1 }
        guard i > targetStart, i < end, bytes[i] == ASCII.space else { throw .malformedStartLine }
        let targetRange = targetStart..<i
        i += 1
        let minor = try parseVersion(bytes, start: i, end: end)
        guard i + 8 == end else { throw .malformedStartLine }
        let head = HTTPHead.make(
            spare, raw: raw, part1: methodRange, part2: targetRange, part3: i..<end, minorVersion: minor, keepAlive: minor == 1
        )
        head.method = method(bytes, methodRange)
        return head
    }

    private static func parseStatusLine(_ bytes: UnsafeRawBufferPointer, end: Int, raw: ByteBuffer,
                                        spare: HTTPHead?) throws(HTTPParseError) -> HTTPHead {
        let minor = try parseVersion(bytes, start: 0, end: end)
        guard end >= 12, bytes[8] == ASCII.space else { throw .malformedStartLine }
        var status = 0
        for i in 9..<12 {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { throw .malformedStartLine }
            status = status * 10 + Int(digit)
        }
        guard status >= 100 else { throw .malformedStartLine }
        var reasonStart = 12
        if end > 12 {
            guard bytes[12] == ASCII.space else { throw .malformedStartLine }
            reasonStart = 13
            for j in reasonStart..<end where !ASCII.isFieldValueChar(bytes[j]) { throw .malformedStartLine }
        }
        let head = HTTPHead.make(
            spare, raw: raw, part1: 0..<8, part2: 9..<12, part3: reasonStart..<end, minorVersion: minor, keepAlive: minor == 1
        )
        head.status = status
        return head
    }

    /// Accepts HTTP/1.0 and HTTP/1.1; another well-formed version is 505, anything else 400.
    private static func parseVersion(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int) throws(HTTPParseError) -> Int {
        guard end - start >= 8,
              bytes[start] == UInt8(ascii: "H"), bytes[start + 1] == UInt8(ascii: "T"),
              bytes[start + 2] == UInt8(ascii: "T"), bytes[start + 3] == UInt8(ascii: "P"),
              bytes[start + 4] == ASCII.slash, bytes[start + 6] == UInt8(ascii: ".")
        else { throw .malformedStartLine }
        let major = bytes[start + 5] &- UInt8(ascii: "0")
        let minor = bytes[start + 7] &- UInt8(ascii: "0")
        guard major < 10, minor < 10 else { throw .malformedStartLine }
        guard major == 1 else { throw .unsupportedVersion }
        // A higher minor version is one the sender knows is compatible: treated as the
        // highest this side implements (RFC 9110 §2.5).
        return Int(min(minor, 1))
    }

    private static func method(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> RequestMethod {
        @inline(__always) func eq(_ literal: StaticString) -> Bool {
            ASCII.equals(bytes, range.lowerBound, range.count, literal)
        }
        switch range.count {
        case 3:
            if eq("GET") { return .get }
            if eq("PUT") { return .put }
        case 4:
            if eq("POST") { return .post }
            if eq("HEAD") { return .head }
        case 5:
            if eq("PATCH") { return .patch }
            if eq("TRACE") { return .trace }
        case 6:
            if eq("DELETE") { return .delete }
        case 7:
            if eq("OPTIONS") { return .options }
            if eq("CONNECT") { return .connect }
        default:
            break
        }
        return .other(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
    }

    private static func parseField(_ bytes: UnsafeRawBufferPointer, start: Int, end: Int) throws(HTTPParseError) -> HeaderField {
        var i = start
        // A line starting with whitespace is obs-fold (RFC 9112 §5.2): refused.
        while i < end, ASCII.isTokenChar(bytes[i]) { i += 1 }
        // The name must end right at the colon: "Name :" is refused (RFC 9112 §5.1).
        guard i > start, i < end, bytes[i] == ASCII.colon else { throw .malformedHeader }
        let nameEnd = i
        i += 1
        while i < end, ASCII.isOWS(bytes[i]) { i += 1 }
        var valueEnd = end
        while valueEnd > i, ASCII.isOWS(bytes[valueEnd - 1]) { valueEnd -= 1 }
        for j in i..<valueEnd where !ASCII.isFieldValueChar(bytes[j]) { throw .malformedHeader }
        let kind = KnownHeader.classify(bytes, start, nameEnd - start)
        return HeaderField(
            nameStart: Int32(start), nameLength: Int32(nameEnd - start),
            valueStart: Int32(i), valueLength: Int32(valueEnd - i),
            kind: kind, hopByHop: kind.isHopByHop
        )
    }

    // MARK: Framing and persistence

    private static func decideFraming(_ head: HTTPHead, _ bytes: UnsafeRawBufferPointer, kind: HTTP1Parser.Kind) throws(HTTPParseError) {
        var contentLength: Int?
        var hasContentLength = false
        var hasTransferEncoding = false
        var lastCodingIsChunked = false
        var onlyChunked = true
        var hostCount = 0
        var closeRequested = false
        var keepAliveRequested = false
        var nominated: [Range<Int>] = []

        for field in head.fields {
            let vs = Int(field.valueStart)
            let vl = Int(field.valueLength)
            switch field.kind {
            case .contentLength:
                hasContentLength = true
                // A list of identical values is allowed (RFC 9110 §8.6); different ones are not.
                for item in listItems(bytes, vs, vl) {
                    guard let value = ASCII.parseDecimal(bytes, item.lowerBound, item.count) else {
                        throw .invalidContentLength
                    }
                    if let existing = contentLength, existing != value { throw .invalidContentLength }
                    contentLength = value
                }
                if contentLength == nil { throw .invalidContentLength }
            case .transferEncoding:
                hasTransferEncoding = true
                for item in listItems(bytes, vs, vl) {
                    let isChunked = ASCII.equalsLowercase(bytes, item.lowerBound, item.count, "chunked")
                    if lastCodingIsChunked || !isChunked { onlyChunked = false }
                    lastCodingIsChunked = isChunked
                }
            case .host:
                hostCount += 1
                if kind == .request, !Authority.isValid(bytes, vs, vl) { throw .invalidHost }
            case .connection, .proxyConnection:
                for item in listItems(bytes, vs, vl) {
                    if ASCII.equalsLowercase(bytes, item.lowerBound, item.count, "close") {
                        closeRequested = true
                    } else if ASCII.equalsLowercase(bytes, item.lowerBound, item.count, "keep-alive") {
                        keepAliveRequested = true
                    } else {
                        if ASCII.equalsLowercase(bytes, item.lowerBound, item.count, "upgrade") { head.connectionUpgrade = true }
                        nominated.append(item)
                    }
                }
            case .expect:
                if ASCII.equalsLowercase(bytes, vs, vl, "100-continue") { head.expectsContinue = true }
            default:
                break
            }
        }

        if !nominated.isEmpty {
            markNominated(head, bytes, nominated)
        }

        head.keepAlive = head.minorVersion == 1 ? !closeRequested : (keepAliveRequested && !closeRequested)

        switch kind {
        case .request:
            if hasTransferEncoding {
                // HTTP/1.0 has no chunked coding; TE with CL is the smuggling shape. Both: 400.
                if head.minorVersion == 0 || hasContentLength { throw .conflictingFraming }
                guard lastCodingIsChunked else { throw .malformedHeader }
                guard onlyChunked else { throw .unsupportedTransferEncoding }
                head.framing = .chunked
            } else if let length = contentLength {
                head.framing = .length(length)
            } else {
                head.framing = .none
            }
            if head.minorVersion == 1 ? hostCount != 1 : hostCount > 1 {
                throw .invalidHost
            }
            try checkAbsoluteFormAuthority(head, bytes)
        case .response:
            let status = head.status
            if status < 200 || status == 204 || status == 304 {
                head.framing = .none
            } else if hasTransferEncoding {
                head.framing = lastCodingIsChunked ? .chunked : .untilClose
                if hasContentLength || !lastCodingIsChunked {
                    // TE overrides CL; such a connection is not reused (RFC 9112 §6.3).
                    head.keepAlive = false
                }
                for index in head.fields.indices where head.fields[index].kind == .contentLength {
                    head.fields[index].hopByHop = true
                }
            } else if let length = contentLength {
                head.framing = .length(length)
            } else {
                head.framing = .untilClose
                head.keepAlive = false
            }
        }
    }

    /// An absolute-form target (`http://authority/path`) names its authority, which replaces
    /// Host (RFC 9112 §3.2.2): it must be a valid host too, and carry no userinfo.
    private static func checkAbsoluteFormAuthority(_ head: HTTPHead, _ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) {
        let target = head.part2
        // CONNECT's authority-form is refused later, with a 405 of its own.
        guard head.method != .connect, target.count > 0, bytes[target.lowerBound] != ASCII.slash,
              bytes[target.lowerBound] != UInt8(ascii: "*") else { return }
        var schemeLength = 0
        if ASCII.equalsLowercase(bytes, target.lowerBound, min(7, target.count), "http://") {
            schemeLength = 7
        } else if ASCII.equalsLowercase(bytes, target.lowerBound, min(8, target.count), "https://") {
            schemeLength = 8
        } else {
            throw .malformedStartLine
        }
        let start = target.lowerBound + schemeLength
        var end = start
        while end < target.upperBound, bytes[end] != ASCII.slash, bytes[end] != ASCII.question { end += 1 }
        guard end > start, Authority.isValid(bytes, start, end - start) else { throw .invalidHost }
    }

    /// Marks the fields named by Connection as hop-by-hop, except the framing and routing fields
    /// a client must not be able to strip that way.
    private static func markNominated(_ head: HTTPHead, _ bytes: UnsafeRawBufferPointer, _ names: [Range<Int>]) {
        for index in head.fields.indices {
            let field = head.fields[index]
            switch field.kind {
            case .host, .contentLength, .transferEncoding: continue
            default: break
            }
            let ns = Int(field.nameStart)
            let nl = Int(field.nameLength)
            for name in names where name.count == nl {
                var equal = true
                for k in 0..<nl where ASCII.lowercased(bytes[ns + k]) != ASCII.lowercased(bytes[name.lowerBound + k]) {
                    equal = false
                    break
                }
                if equal {
                    head.fields[index].hopByHop = true
                    break
                }
            }
        }
    }

    /// The non-empty, whitespace-trimmed items of a comma-separated field value.
    private static func listItems(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ count: Int) -> ListItems {
        ListItems(bytes: bytes, position: start, end: start + count)
    }

    /// Iterates list items without allocating: this runs for every response's Content-Length.
    public struct ListItems: Sequence, IteratorProtocol {
        public let bytes: UnsafeRawBufferPointer
        public var position: Int
        public let end: Int

        public mutating func next() -> Range<Int>? {
            while position <= end {
                var itemEnd = position
                while itemEnd < end, bytes[itemEnd] != ASCII.comma { itemEnd += 1 }
                var s = position
                var e = itemEnd
                position = itemEnd + 1
                while s < e, ASCII.isOWS(bytes[s]) { s += 1 }
                while e > s, ASCII.isOWS(bytes[e - 1]) { e -= 1 }
                if e > s { return s..<e }
            }
            return nil
        }
    }
}
