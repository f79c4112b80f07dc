import HTTPWire
import NIOCore
import NIOHPACK

/// A stream's request HEADERS written as the HTTP/1.1 request head that `HTTP2Stream` parses:
/// so an HTTP/2 request goes through the same parser limits, refusals, filters, routing, cache
/// and retries as an HTTP/1.1 one, with nothing to keep in step.
///
/// It is also where the header block is validated (RFC 9113 §8.1.1, §8.2, §8.3), once (the
/// codec only decodes it). The rules are NIOHTTP2's: names are lower-case tokens; pseudo-headers
/// come first, once each, only the request's (`:method`, `:scheme`, `:authority`, `:path`; for
/// CONNECT `:method` and `:authority`), with no SP, CTL or DEL in their values; no
/// connection-specific field, `te` only as `trailers`; no NUL, CR or LF in any value. A block
/// that breaks one is a malformed request: a stream error.
enum HTTP2RequestHead {
    /// How the stream's DATA frames become the HTTP/1.1 body.
    enum BodyCoding: Equatable {
        /// END_STREAM came with the HEADERS: no body.
        case none
        /// A `content-length` was given: DATA is the body as it is.
        case length
        /// No length: DATA frames become chunks, END_STREAM the last chunk.
        case chunked
    }

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    /// The request's method as written, for the response side (a HEAD response has no body).
    struct Written {
        var coding: BodyCoding
        var isHead: Bool
    }

    /// Writes the head into `out`.
    static func write(_ headers: HPACKHeaders, endStream: Bool, into out: inout ByteBuffer) throws(Malformed) -> Written {
        var method: String?
        var scheme: String?
        var path: String?
        var authority: String?
        var hasLength = false
        var sawRegularField = false
        for (name, value, _) in headers {
            guard name.utf8.first == UInt8(ascii: ":") else {
                sawRegularField = true
                continue
            }
            if sawRegularField { throw Malformed(description: "pseudo-header \(name) after a regular field") }
            try checkPseudoValue(value, of: name)
            switch name {
            case ":method": try set(&method, value, name)
            case ":scheme": try set(&scheme, value, name)
            case ":path": try set(&path, value, name)
            case ":authority": try set(&authority, value, name)
            default: throw Malformed(description: "unknown pseudo-header \(name)")
            }
        }
        guard let method, !method.isEmpty else { throw Malformed(description: "no :method") }
        let target: String
        if method == "CONNECT" {
            // CONNECT names an authority instead of a path (`HTTP2Stream` refuses it, 405).
            guard let authority, scheme == nil, path == nil else { throw Malformed(description: "CONNECT needs :authority only") }
            target = authority
        } else {
            guard let path, scheme != nil else { throw Malformed(description: "no :scheme or :path") }
            target = path
        }
        guard !target.isEmpty else { throw Malformed(description: "empty :path") }
        out.writeString(method)
        out.writeStaticString(" ")
        out.writeString(target)
        out.writeStaticString(" HTTP/1.1\r\n")
        // RFC 9113 §8.3.1: :authority stands for Host, and wins over a host field.
        if let authority {
            out.writeStaticString("host: ")
            out.writeString(authority)
            out.writeStaticString("\r\n")
        }
        // RFC 9113 §8.2.3: a client may split cookies into several fields; HTTP/1.1 wants one.
        var cookies: [String] = []
        if sawRegularField {
            for (name, value, _) in headers where name.utf8.first != UInt8(ascii: ":") {
                try checkRegular(name, value)
                if name == "host", authority != nil { continue }
                if name == "cookie" {
                    cookies.append(value)
                    continue
                }
                if name == "content-length" { hasLength = true }
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
        }
        if !cookies.isEmpty {
            out.writeStaticString("cookie: ")
            out.writeString(cookies.joined(separator: "; "))
            out.writeStaticString("\r\n")
        }
        let coding: BodyCoding = endStream ? .none : hasLength ? .length : .chunked
        if coding == .chunked {
            out.writeStaticString("transfer-encoding: chunked\r\n")
        }
        out.writeStaticString("\r\n")
        return Written(coding: coding, isHead: method == "HEAD")
    }

    private static func set(_ slot: inout String?, _ value: String, _ name: String) throws(Malformed) {
        guard slot == nil else { throw Malformed(description: "\(name) twice") }
        slot = value
    }

    /// No pseudo-header's grammar admits SP, a CTL or DEL; in `:path` or `:method` they would
    /// break the HTTP/1.1 request line (a smuggled request).
    private static func checkPseudoValue(_ value: String, of name: String) throws(Malformed) {
        for byte in value.utf8 where byte <= 0x20 || byte == 0x7F {
            throw Malformed(description: "\(name) holds SP, a control character or DEL")
        }
    }

    /// A lower-case token name, no connection-specific field, and a value without NUL, CR or
    /// LF (which would end the HTTP/1.1 line: a smuggled header).
    private static func checkRegular(_ name: String, _ value: String) throws(Malformed) {
        let utf8 = name.utf8
        guard !utf8.isEmpty else { throw Malformed(description: "an empty field name") }
        let valid = utf8.withContiguousStorageIfAvailable { $0.allSatisfy(isLowerCaseTokenByte) }
            ?? utf8.allSatisfy(isLowerCaseTokenByte)
        guard valid else { throw Malformed(description: "field name \(name) is not a lower-case token") }
        switch name {
        case "connection", "transfer-encoding", "proxy-connection", "keep-alive", "upgrade":
            throw Malformed(description: "connection-specific field \(name)")
        case "te" where value != "trailers":
            throw Malformed(description: "te other than trailers")
        default:
            break
        }
        for byte in value.utf8 where byte == 0x0D || byte == 0x0A || byte == 0 {
            throw Malformed(description: "a value of \(name) holds CR, LF or NUL")
        }
    }

    /// RFC 9110 §5.6.2 tchar, without upper-case letters (RFC 9113 §8.2.1).
    private static func isLowerCaseTokenByte(_ byte: UInt8) -> Bool {
        ASCII.isTokenChar(byte) && !(0x41...0x5A).contains(byte)
    }
}
