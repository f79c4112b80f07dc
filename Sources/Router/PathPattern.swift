/// A route's path pattern: `/api/users/{id}`, `/static/*/logo.png`, `/api/auth/**`.
///
/// - a literal segment matches itself (case-sensitive, as paths are);
/// - `{name}` matches one segment and captures it;
/// - `*` matches one segment;
/// - a final `**` matches whatever remains, including nothing.
/// Empty segments are ignored, so `/a//b/` and `/a/b` are the same path.
public struct PathPattern: Hashable, Sendable, CustomStringConvertible {
    public enum Segment: Hashable, Sendable {
        case literal(String)
        case parameter(String)
        case anySegment
        case rest
    }

    public let segments: [Segment]
    public let text: String

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case mustStartWithSlash
        case restNotLast
        case badParameter(String)
        case duplicateParameter(String)

        public var description: String {
            switch self {
            case .mustStartWithSlash: "a path pattern starts with '/'"
            case .restNotLast: "'**' may only be the last segment"
            case .badParameter(let segment): "'\(segment)': a parameter is a whole segment like {name} (letters, digits, _)"
            case .duplicateParameter(let name): "parameter {\(name)} appears twice"
            }
        }
    }

    public init(_ text: String) throws(ParseError) {
        guard text.hasPrefix("/") else { throw .mustStartWithSlash }
        var segments: [Segment] = []
        var names: Set<String> = []
        let parts = text.split(separator: "/", omittingEmptySubsequences: true)
        for (index, part) in parts.enumerated() {
            if part == "**" {
                guard index == parts.count - 1 else { throw .restNotLast }
                segments.append(.rest)
            } else if part == "*" {
                segments.append(.anySegment)
            } else if part.contains("{") || part.contains("}") {
                guard part.hasPrefix("{"), part.hasSuffix("}"), part.count > 2 else { throw .badParameter(String(part)) }
                let name = String(part.dropFirst().dropLast())
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { throw .badParameter(String(part)) }
                guard names.insert(name).inserted else { throw .duplicateParameter(name) }
                segments.append(.parameter(name))
            } else {
                segments.append(.literal(String(part)))
            }
        }
        self.segments = segments
        self.text = text
    }

    public var parameterNames: [String] {
        segments.compactMap { if case .parameter(let name) = $0 { name } else { nil } }
    }

    public var description: String { text }

    /// Matches a normalized path; returns the captured parameters in pattern order, or nil.
    public func match(_ path: NormalizedPath) -> [Substring]? {
        var captured: [Substring] = []
        var iterator = path.segments.makeIterator()
        for segment in segments {
            switch segment {
            case .rest:
                return captured
            case .literal(let literal):
                guard let next = iterator.next(), next == literal else { return nil }
            case .parameter:
                guard let next = iterator.next() else { return nil }
                captured.append(next)
            case .anySegment:
                guard iterator.next() != nil else { return nil }
            }
        }
        return iterator.next() == nil ? captured : nil
    }
}

/// A request path prepared for matching: the query removed, empty and `.` segments dropped,
/// `..` applied, and percent-encoded unreserved characters decoded, so that `/api//auth`,
/// `/api/x/../auth` and `/api/%61uth` all meet the routes (and limits) of `/api/auth`, as the
/// upstream will understand them. Clean paths, nearly all of them, are used as they are.
public struct NormalizedPath: Sendable {
    public let path: Substring

    /// - Parameter unescapingSlashes: `%2F` and `%5C` become `/` and `\` before the path is
    ///   normalized (so `/a%2F..%2Fb` is `/b`); otherwise they stay data.
    public init(_ raw: String, unescapingSlashes: Bool = false) {
        var raw = raw
        raw.makeContiguousUTF8()
        let utf8 = raw.utf8
        var withoutQuery = utf8.firstIndex(of: UInt8(ascii: "?")).map { raw[..<$0] } ?? raw[...]
        var unescaped: String?
        if unescapingSlashes, Self.hasEscapedSlash(withoutQuery) {
            unescaped = Self.unescapeSlashes(withoutQuery)
            withoutQuery = unescaped![...]
        }
        if Self.isClean(withoutQuery.utf8) {
            path = withoutQuery
        } else {
            var normalized = Self.normalize(withoutQuery)
            normalized.makeContiguousUTF8()
            path = Substring(normalized)
        }
    }

    /// `%2F` or `%5C` (either case) in the path: a slash or backslash the client escaped, which
    /// some upstreams decode before routing and some do not.
    /// Checked on every request, so it walks the bytes in place (no copy).
    public static func hasEscapedSlash(_ path: Substring) -> Bool {
        if let found = path.utf8.withContiguousStorageIfAvailable(hasEscapedSlash) { return found }
        return Array(path.utf8).withUnsafeBufferPointer(hasEscapedSlash)
    }

    private static func hasEscapedSlash(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count >= 3 else { return false }
        for i in 0..<(bytes.count - 2) where bytes[i] == UInt8(ascii: "%") {
            let high = bytes[i + 1], low = bytes[i + 2] | 0x20
            if (high == UInt8(ascii: "2") && low == UInt8(ascii: "f")) || (high == UInt8(ascii: "5") && low == UInt8(ascii: "c")) {
                return true
            }
        }
        return false
    }

    static func unescapeSlashes(_ path: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(path.utf8)[...]
        while let byte = utf8.first {
            if byte == UInt8(ascii: "%"), utf8.count >= 3 {
                let high = utf8[utf8.startIndex + 1], low = utf8[utf8.startIndex + 2] | 0x20
                if high == UInt8(ascii: "2") && low == UInt8(ascii: "f") {
                    bytes.append(UInt8(ascii: "/"))
                    utf8 = utf8.dropFirst(3)
                    continue
                }
                if high == UInt8(ascii: "5") && low == UInt8(ascii: "c") {
                    bytes.append(UInt8(ascii: "\\"))
                    utf8 = utf8.dropFirst(3)
                    continue
                }
            }
            bytes.append(byte)
            utf8 = utf8.dropFirst()
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Runs `body` over the path's UTF-8 bytes (contiguous for native strings; copied otherwise).
    @inline(__always)
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = path.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(path.utf8).withUnsafeBufferPointer(body)
    }

    /// The non-empty segments.
    public var segments: SegmentSequence { SegmentSequence(path: path) }

    public struct SegmentSequence: Sequence {
        let path: Substring

        public struct Iterator: IteratorProtocol {
            let path: Substring
            var position: Substring.Index

            public mutating func next() -> Substring? {
                let end = path.endIndex
                while position < end, path.utf8[position] == UInt8(ascii: "/") {
                    position = path.utf8.index(after: position)
                }
                guard position < end else { return nil }
                let start = position
                while position < end, path.utf8[position] != UInt8(ascii: "/") {
                    position = path.utf8.index(after: position)
                }
                return path[start..<position]
            }
        }

        public func makeIterator() -> Iterator { Iterator(path: path, position: path.startIndex) }
    }

    /// No `%`, no `.`-only segment: matching can use the bytes as they are (empty segments are
    /// skipped by the iterator anyway).
    static func isClean(_ bytes: Substring.UTF8View) -> Bool {
        var dotsInSegment = 0
        var segmentLength = 0
        var sawSlash = false
        for byte in bytes {
            if byte == UInt8(ascii: "%") { return false }
            if byte == UInt8(ascii: "/") {
                if segmentLength > 0 && dotsInSegment == segmentLength && dotsInSegment <= 2 { return false }
                // An empty segment (`//`) is merged away, as routing skips it.
                if segmentLength == 0 && sawSlash { return false }
                sawSlash = true
                dotsInSegment = 0
                segmentLength = 0
            } else {
                segmentLength += 1
                if byte == UInt8(ascii: ".") { dotsInSegment += 1 }
            }
        }
        return !(segmentLength > 0 && dotsInSegment == segmentLength && dotsInSegment <= 2)
    }

    static func normalize(_ raw: Substring) -> String {
        var output: [String] = []
        for segment in raw.split(separator: "/", omittingEmptySubsequences: true) {
            let decoded = decodeUnreserved(segment)
            switch decoded {
            case ".": continue
            case "..": _ = output.popLast()
            default: output.append(decoded)
            }
        }
        // A trailing slash is part of the resource's name (`/api/health/` is not `/api/health`).
        let trailingSlash = raw.hasSuffix("/") && !output.isEmpty
        return "/" + output.joined(separator: "/") + (trailingSlash ? "/" : "")
    }

    /// Decodes `%XX` only where XX is an unreserved character (RFC 3986 §2.3); `%2F` and the
    /// like keep their meaning as data.
    static func decodeUnreserved(_ segment: Substring) -> String {
        guard segment.contains("%") else { return String(segment) }
        var bytes: [UInt8] = []
        var utf8 = Array(segment.utf8)[...]
        while let byte = utf8.first {
            if byte == UInt8(ascii: "%"), utf8.count >= 3,
               let high = hex(utf8[utf8.startIndex + 1]), let low = hex(utf8[utf8.startIndex + 2]) {
                let value = UInt8(high << 4 | low)
                if isUnreserved(value) {
                    bytes.append(value)
                } else {
                    bytes += utf8.prefix(3).map { byte in (byte >= 0x61 && byte <= 0x66) ? byte - 32 : byte }
                }
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
                utf8 = utf8.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hex(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
             UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}
