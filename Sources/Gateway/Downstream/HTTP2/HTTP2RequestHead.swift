import NIOCore
import NIOHPACK

/// A stream's request HEADERS written as the HTTP/1.1 request head that the stream's
/// `HTTP1Connection` parses: so an HTTP/2 request goes through the same parser limits, refusals,
/// filters, routing, cache and retries as an HTTP/1.1 one, with nothing to keep in step.
///
/// NIOHTTP2 has already checked the block (header block validation is on): the pseudo-headers
/// are present and well-formed, names are lower case, connection-specific fields are refused,
/// and values hold no CR, LF or NUL. The checks here are the ones the HTTP/1.1 bytes need to be
/// safe whatever that validation lets through.
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
        var path: String?
        var authority: String?
        var hasLength = false
        for (name, value, _) in headers where name.utf8.first == UInt8(ascii: ":") {
            switch name {
            case ":method": method = value
            case ":path": path = value
            case ":authority": authority = value
            case ":scheme", ":protocol": break
            default: throw Malformed(description: "unknown pseudo-header \(name)")
            }
        }
        guard let method, !method.isEmpty else { throw Malformed(description: "no :method") }
        // CONNECT names an authority instead of a path (the connection handler refuses it, 405).
        guard let target = path ?? (method == "CONNECT" ? authority : nil), !target.isEmpty else {
            throw Malformed(description: "no :path")
        }
        try check(method)
        try check(target)
        out.writeString(method)
        out.writeStaticString(" ")
        out.writeString(target)
        out.writeStaticString(" HTTP/1.1\r\n")
        // RFC 9113 §8.3.1: :authority stands for Host, and wins over a host field.
        if let authority {
            try check(authority)
            out.writeStaticString("host: ")
            out.writeString(authority)
            out.writeStaticString("\r\n")
        }
        // RFC 9113 §8.2.3: a client may split cookies into several fields; HTTP/1.1 wants one.
        var cookies: [String] = []
        for (name, value, _) in headers where name.utf8.first != UInt8(ascii: ":") {
            if name == "host", authority != nil { continue }
            if name == "cookie" {
                cookies.append(value)
                continue
            }
            if name == "content-length" { hasLength = true }
            try check(value)
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        if !cookies.isEmpty {
            for cookie in cookies { try check(cookie) }
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

    /// A CR or LF would end the line (a smuggled header), a NUL is refused by every HTTP/1.1
    /// parser: none may reach the HTTP/1.1 bytes.
    private static func check(_ text: String) throws(Malformed) {
        for byte in text.utf8 where byte == 0x0D || byte == 0x0A || byte == 0 {
            throw Malformed(description: "a header value holds CR, LF or NUL")
        }
    }
}
