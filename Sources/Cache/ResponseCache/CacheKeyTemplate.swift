/// What a cache key is made from, for one request.
public protocol CacheKeyInputs {
    /// The route's `{name}` captures, in the order of the route pattern's parameters.
    func pathParameter(_ index: Int) -> Substring?
    /// The normalized path.
    var path: Substring { get }
    /// Everything after `?` in the request target (empty when none).
    var query: Substring { get }
    var host: String { get }
    func header(_ lowercasedName: String) -> String?
}

/// A cache key template such as `sub:{user}` or `{host}{path}?{query}`: literal text and
/// placeholders — `{name}` (a path parameter of the route), `{query.NAME}`, `{header.NAME}`,
/// `{path}`, `{query}` and `{host}` — compiled once and rendered per request.
///
/// Keys are unambiguous: every value is escaped to the alphabet of its kind (`%XX` for
/// anything else, `%` itself included), so a header can never contain `/` and a path
/// parameter never a `/` or `?`; and a template whose neighbouring placeholders could still
/// be split two ways (`{a}-{b}` over path parameters, which may contain `-`) is refused when
/// the configuration loads. Two requests that differ get different keys, whoever sends them.
public struct CacheKeyTemplate: Sendable, Equatable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case pathParameter(Int)
        case queryParameter(String)
        case header(String)
        case path
        case query
        case host
    }

    public struct TemplateError: Error, CustomStringConvertible {
        public var description: String
    }

    public let parts: [Part]
    public let text: String
    /// The key needs the route's `{name}` captures (finding them costs a walk of the path and
    /// an array, which a hit under the default key need not pay).
    public let usesPathParameters: Bool

    /// The key when a route names none: the request target on its host (nginx's default
    /// `$scheme$proxy_host$request_uri`, less the scheme: the gateway listens on one).
    public static let defaultText = "{host}{path}?{query}"

    /// - Parameter parameterNames: the route pattern's `{name}` parameters, in order.
    public init(_ text: String, parameterNames: [String]) throws(TemplateError) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            literal += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw TemplateError(description: "unclosed '{' in key '\(text)'")
            }
            let name = String(rest[rest.index(after: open)..<close])
            if !literal.isEmpty {
                parts.append(.literal(literal))
                literal = ""
            }
            switch name {
            case "path": parts.append(.path)
            case "query": parts.append(.query)
            case "host": parts.append(.host)
            default:
                if name.hasPrefix("query."), name.count > 6 {
                    parts.append(.queryParameter(String(name.dropFirst(6))))
                } else if name.hasPrefix("header."), name.count > 7 {
                    parts.append(.header(String(name.dropFirst(7)).lowercased()))
                } else if let index = parameterNames.firstIndex(of: name) {
                    parts.append(.pathParameter(index))
                } else {
                    let known = parameterNames.isEmpty ? "the route has no {name} parameters" : "the route's parameters are " + parameterNames.map { "{\($0)}" }.joined(separator: ", ")
                    throw TemplateError(description: "unknown placeholder {\(name)} in key '\(text)': \(known); also {path}, {query}, {host}, {query.NAME}, {header.NAME}")
                }
            }
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
        usesPathParameters = parts.contains { if case .pathParameter = $0 { true } else { false } }
        try Self.checkSeparators(parts, text: text)
    }

    /// Which characters a placeholder's rendered value may contain (besides `%XX` escapes).
    enum Alphabet {
        /// Headers and query values: unreserved characters only.
        case free
        /// A path parameter: a segment's characters (RFC 3986 pchar).
        case segment
        /// The path: segments and `/`.
        case path
        /// The query string: segments, `/` and `?`.
        case query
        /// The host: a registered name or IP literal, and a port.
        case host

        /// `allows` as a bit set, for the per-request check.
        var bytes: ByteSet {
            switch self {
            case .free: Self.freeBytes
            case .segment: Self.segmentBytes
            case .path: Self.pathBytes
            case .query: Self.queryBytes
            case .host: Self.hostBytes
            }
        }

        private static let freeBytes = ByteSet(Alphabet.free.allows)
        private static let segmentBytes = ByteSet(Alphabet.segment.allows)
        private static let pathBytes = ByteSet(Alphabet.path.allows)
        private static let queryBytes = ByteSet(Alphabet.query.allows)
        private static let hostBytes = ByteSet(Alphabet.host.allows)

        func allows(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                return true
            case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
                 UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
                return self != .free
            case UInt8(ascii: ":"):
                return self != .free
            case UInt8(ascii: "@"):
                return self == .segment || self == .path || self == .query
            case UInt8(ascii: "/"):
                return self == .path || self == .query
            case UInt8(ascii: "?"):
                return self == .query
            case UInt8(ascii: "["), UInt8(ascii: "]"):
                return self == .host
            default:
                return false
            }
        }
    }

    static func alphabet(of part: Part) -> Alphabet? {
        switch part {
        case .literal: nil
        case .pathParameter: .segment
        case .queryParameter, .header: .free
        case .path: .path
        case .query: .query
        case .host: .host
        }
    }

    /// Between two placeholders, the literal text must hold a character one of them cannot
    /// contain, or the two could trade characters. With no text between, only a path after a
    /// placeholder without `/` is safe (`{host}{path}`): a path starts with `/`.
    private static func checkSeparators(_ parts: [Part], text: String) throws(TemplateError) {
        var previous: (part: Part, alphabet: Alphabet)?
        var between: [UInt8] = []
        for part in parts {
            if case .literal(let literal) = part {
                between += literal.utf8
                continue
            }
            let alphabet = alphabet(of: part)!
            if let (before, beforeAlphabet) = previous {
                let separated = between.isEmpty
                    ? (part == .path && !beforeAlphabet.allows(UInt8(ascii: "/")))
                    // `%` starts the escapes any value may hold: it separates nothing.
                    : between.contains { $0 != UInt8(ascii: "%") && (!beforeAlphabet.allows($0) || !alphabet.allows($0)) }
                if !separated {
                    throw TemplateError(description: "in key '\(text)', \(name(of: before)) and \(name(of: part)) need a separator neither can contain (such as '/' or '|'), or keys could collide")
                }
            }
            previous = (part, alphabet)
            between = []
        }
    }

    private static func name(of part: Part) -> String {
        switch part {
        case .literal(let text): "'\(text)'"
        case .pathParameter(let index): "path parameter #\(index + 1)"
        case .queryParameter(let name): "{query.\(name)}"
        case .header(let name): "{header.\(name)}"
        case .path: "{path}"
        case .query: "{query}"
        case .host: "{host}"
        }
    }

    public var description: String { text }

    public func render(_ inputs: some CacheKeyInputs) -> String {
        // Written straight into the String's storage: one allocation per key (none for short
        // ones), sized by a first pass (an escaped byte takes three).
        var bound = 0
        for part in parts {
            if case .literal(let text) = part {
                bound += text.utf8.count
            } else {
                bound += 3 * Self.value(of: part, inputs).utf8.count
            }
        }
        return String(unsafeUninitializedCapacity: bound) { out in
            var count = 0
            for part in parts {
                switch part {
                case .literal(let text):
                    for byte in text.utf8 { out[count] = byte; count += 1 }
                case .host:
                    Self.write(Substring(inputs.host), Alphabet.host.bytes, lowercasing: true, to: out, at: &count)
                default:
                    Self.write(Self.value(of: part, inputs), Self.alphabet(of: part)!.bytes, lowercasing: false,
                               to: out, at: &count)
                }
            }
            return count
        }
    }

    private static func value(of part: Part, _ inputs: some CacheKeyInputs) -> Substring {
        switch part {
        case .literal(let text): text[...]
        case .pathParameter(let index): inputs.pathParameter(index) ?? ""
        case .queryParameter(let name): queryValue(name, in: inputs.query) ?? ""
        case .header(let name): inputs.header(name).map { Substring($0) } ?? ""
        case .path: inputs.path
        case .query: inputs.query
        case .host: Substring(inputs.host)
        }
    }

    /// `value`, with every byte its alphabet does not allow (and `%`) as `%XX`; ASCII letters
    /// lower-cased when `lowercasing` (host names are case-insensitive).
    private static func write(_ value: Substring, _ allowed: ByteSet, lowercasing: Bool,
                              to out: UnsafeMutableBufferPointer<UInt8>, at count: inout Int) {
        var value = value
        value.withUTF8 { bytes in
            let digits: StaticString = "0123456789ABCDEF"
            for byte in bytes {
                if allowed.contains(byte) {
                    out[count] = lowercasing && byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
                    count += 1
                } else {
                    out[count] = UInt8(ascii: "%")
                    out[count + 1] = digits.utf8Start[Int(byte >> 4)]
                    out[count + 2] = digits.utf8Start[Int(byte & 15)]
                    count += 3
                }
            }
        }
    }

    /// The first `name=value` of a query string (the value as sent, not decoded).
    static func queryValue(_ name: String, in query: Substring) -> Substring? {
        var rest = query
        while !rest.isEmpty {
            let end = rest.firstIndex(of: "&") ?? rest.endIndex
            let pair = rest[..<end]
            if let equals = pair.firstIndex(of: "=") {
                if pair[..<equals] == name { return pair[pair.index(after: equals)...] }
            } else if pair == name {
                return ""
            }
            rest = end == rest.endIndex ? "" : rest[rest.index(after: end)...]
        }
        return nil
    }
}

/// A set of ASCII bytes as two 64-bit masks: one shift and one test per byte.
struct ByteSet: Sendable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0

    init(_ member: (UInt8) -> Bool) {
        for byte in UInt8(0)..<128 where member(byte) {
            if byte < 64 { low |= 1 << UInt64(byte) } else { high |= 1 << UInt64(byte - 64) }
        }
    }

    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        byte < 64 ? (low >> UInt64(byte)) & 1 != 0 : byte < 128 ? (high >> UInt64(byte &- 64)) & 1 != 0 : false
    }
}
