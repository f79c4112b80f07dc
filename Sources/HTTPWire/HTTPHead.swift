import NIOCore
import Router

/// How the body of a message is delimited (RFC 9112 §6.3).
public enum BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
    /// Responses only: the body runs until the upstream closes the connection.
    case untilClose
}

/// A parsed request or response head. It keeps the bytes it was parsed from and refers to the
/// start line and each field by offset, so forwarding copies bytes instead of building strings.
/// A class: a head is passed through the parser's events into an exchange and read many times;
/// as a struct of this size every hand-over was a copy and a dozen retains.
public final class HTTPHead {
    /// The head's bytes, from the start line through the blank line, reader index 0.
    public var raw: ByteBuffer
    public var fields: ContiguousArray<HeaderField>

    /// Start line parts: request = method, target, version; response = version, status, reason.
    public var part1: Range<Int>
    public var part2: Range<Int>
    public var part3: Range<Int>

    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var framing: BodyFraming
    /// Whether the sender allows this connection to carry another message after this one.
    public var keepAlive: Bool

    /// Request heads only.
    public var method: RequestMethod = .get
    public var expectsContinue = false
    /// `Connection` lists `upgrade`: with an `Upgrade` field, the sender asks to switch protocols.
    public var connectionUpgrade = false
    /// Response heads only.
    public var status: Int = 0

    public init(raw: ByteBuffer, fields: ContiguousArray<HeaderField>, part1: Range<Int>, part2: Range<Int>, part3: Range<Int>,
         minorVersion: Int, framing: BodyFraming, keepAlive: Bool) {
        self.raw = raw
        self.fields = fields
        self.part1 = part1
        self.part2 = part2
        self.part3 = part3
        self.minorVersion = minorVersion
        self.framing = framing
        self.keepAlive = keepAlive
    }

    /// Takes the head's bytes out (the head keeps none): the caller then holds the only
    /// reference to them (a buffer cleared while shared gets new storage), or lets them go so
    /// that the receive buffer they are a slice of can be reused.
    public func takeRaw() -> ByteBuffer {
        let bytes = raw
        raw = Self.noBytes
        return bytes
    }

    private static let noBytes = ByteBuffer()

    /// The head in `slot` with its bytes taken out (`takeRaw`), if nothing but `slot` holds it:
    /// then it may be parsed into again. Nil, with `slot` untouched, while someone else holds it.
    public static func reclaim(_ slot: inout HTTPHead?) -> (head: HTTPHead, raw: ByteBuffer)? {
        guard isKnownUniquelyReferenced(&slot), let head = slot else { return nil }
        slot = nil
        return (head, head.takeRaw())
    }

    /// A new head, or `spare` written over as if new (its field storage is kept for the parser).
    static func make(_ spare: HTTPHead?, raw: ByteBuffer, part1: Range<Int>, part2: Range<Int>, part3: Range<Int>,
                     minorVersion: Int, keepAlive: Bool) -> HTTPHead {
        guard let head = spare else {
            return HTTPHead(raw: raw, fields: [], part1: part1, part2: part2, part3: part3, minorVersion: minorVersion,
                            framing: .none, keepAlive: keepAlive)
        }
        head.raw = raw
        head.part1 = part1
        head.part2 = part2
        head.part3 = part3
        head.minorVersion = minorVersion
        head.framing = .none
        head.keepAlive = keepAlive
        head.method = .get
        head.expectsContinue = false
        head.connectionUpgrade = false
        head.status = 0
        return head
    }

    public var isRequest: Bool { status == 0 }

    public var contentLength: Int? {
        if case .length(let length) = framing { return length }
        return nil
    }

    // MARK: Reading parts of the head

    public func string(_ range: Range<Int>) -> String {
        raw.getString(at: range.lowerBound, length: range.count) ?? ""
    }

    public func name(of field: HeaderField) -> String {
        raw.getString(at: Int(field.nameStart), length: Int(field.nameLength)) ?? ""
    }

    public func value(of field: HeaderField) -> String {
        raw.getString(at: Int(field.valueStart), length: Int(field.valueLength)) ?? ""
    }

    /// The request target exactly as received (origin-form, absolute-form or `*`).
    public var target: String { string(part2) }

    /// The request target's bytes, without making a String of them.
    public var targetBytes: ByteBufferView { raw.readableBytesView[part2] }

    /// `*`: a request about the server as a whole (RFC 9112 §3.2.4; OPTIONS only).
    public var isAsteriskForm: Bool {
        part2.count == 1 && raw.getInteger(at: part2.lowerBound, as: UInt8.self) == UInt8(ascii: "*")
    }

    /// The path of the request target, without the query; for absolute-form targets the part
    /// after the authority.
    public var path: String {
        if isOriginForm {
            // The common case, without a view of the buffer (each one retains it).
            return raw.withUnsafeReadableBytes { bytes in
                let target = UnsafeRawBufferPointer(rebasing: bytes[part2])
                let end = target.firstIndex(of: ASCII.question) ?? target.endIndex
                return String(decoding: UnsafeRawBufferPointer(rebasing: target[..<end]), as: UTF8.self)
            }
        }
        let target = raw.readableBytesView[part2]
        var start = target.startIndex
        if target.first != ASCII.slash, let schemeEnd = Self.absoluteFormPathStart(target) {
            start = schemeEnd
        }
        let end = target[start...].firstIndex(of: ASCII.question) ?? target.endIndex
        if start == end { return "/" }
        return String(decoding: target[start..<end], as: UTF8.self)
    }

    /// The query string without `?`, or nil.
    public var query: String? {
        let target = raw.readableBytesView[part2]
        guard let q = target.firstIndex(of: ASCII.question) else { return nil }
        return String(decoding: target[(q + 1)...], as: UTF8.self)
    }

    /// For `http://host/path`, the index where `/path` starts (or the end when there is no path).
    private static func absoluteFormPathStart(_ target: ByteBufferView) -> Int? {
        let bytes = Array(target.prefix(8)).map(ASCII.lowercased)
        let prefix: Int
        if bytes.starts(with: Array("http://".utf8)) { prefix = 7 }
        else if bytes.starts(with: Array("https://".utf8)) { prefix = 8 }
        else { return nil }
        let afterScheme = target.index(target.startIndex, offsetBy: prefix)
        return target[afterScheme...].firstIndex(where: { $0 == ASCII.slash || $0 == ASCII.question })
            ?? target.endIndex
    }

    /// The target starts with `/` (origin-form, RFC 9112 §3.2.1), as nearly every request's does.
    private var isOriginForm: Bool {
        raw.getInteger(at: part2.lowerBound, as: UInt8.self) == ASCII.slash
    }

    /// The authority of an absolute-form target, which replaces Host (RFC 9112 §3.2.2).
    public var absoluteFormAuthority: String? {
        if isOriginForm { return nil }
        let target = raw.readableBytesView[part2]
        guard target.first != ASCII.slash, let pathStart = Self.absoluteFormPathStart(target) else { return nil }
        let schemeLength = ASCII.lowercased(target[target.startIndex + 4]) == UInt8(ascii: "s") ? 8 : 7
        return String(decoding: target[(target.startIndex + schemeLength)..<pathStart], as: UTF8.self)
    }

    public func firstField(_ kind: KnownHeader) -> HeaderField? {
        // An index loop: `first(where:)` on the stored array retained and released it per call.
        var index = 0
        while index < fields.count {
            if fields[index].kind == kind { return fields[index] }
            index += 1
        }
        return nil
    }

    public func firstValue(_ kind: KnownHeader) -> String? {
        firstField(kind).map(value(of:))
    }

    /// The first value of a header, by case-insensitive name.
    public func firstValue(named name: String) -> String? {
        var name = name
        return name.withUTF8 { nameBytes -> String? in
            raw.withUnsafeReadableBytes { bytes -> String? in
                for field in fields where Int(field.nameLength) == nameBytes.count {
                    var equal = true
                    for i in 0..<nameBytes.count
                    where ASCII.lowercased(bytes[Int(field.nameStart) + i]) != ASCII.lowercased(nameBytes[i]) {
                        equal = false
                        break
                    }
                    if equal { return value(of: field) }
                }
                return nil
            }
        }
    }

    /// All values of a header kind joined with ", " (a list-valued field's combined value).
    public func combinedValue(_ kind: KnownHeader) -> String? {
        var result: String?
        for field in fields where field.kind == kind {
            let value = value(of: field)
            result = result.map { $0 + ", " + value } ?? value
        }
        return result
    }

    /// The host the client asked for: an absolute-form authority, else the Host header.
    public var host: String? {
        absoluteFormAuthority ?? firstValue(.host)
    }
}

extension HTTPHead: RequestHeaders {}

extension HTTPHead: CustomStringConvertible {
    public var description: String { raw.getString(at: 0, length: raw.readableBytes) ?? "<binary head>" }
}
