import HTTPWire
import NIOCore

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

    /// Writes the head into `out`, straight from the decoded block's bytes.
    static func write(_ headers: HTTP2HeaderFields, endStream: Bool, into out: inout ByteBuffer) throws(Malformed) -> Written {
        let result: Result<Written, Malformed> = headers.bytes.withUnsafeBytes { bytes in
            do throws(Malformed) {
                return .success(try write(headers.fields, bytes, endStream: endStream, into: &out))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func write(_ fields: [HTTP2HeaderFields.Field], _ bytes: UnsafeRawBufferPointer, endStream: Bool,
                              into out: inout ByteBuffer) throws(Malformed) -> Written {
        func text(_ range: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self) }
        func view(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[range]) }
        func isName(_ range: Range<Int>, _ literal: StaticString) -> Bool {
            ASCII.equals(bytes, range.lowerBound, range.count, literal)
        }
        var method: Range<Int>?
        var scheme: Range<Int>?
        var path: Range<Int>?
        var authority: Range<Int>?
        var regularStart = fields.count
        for (index, field) in fields.enumerated() {
            guard field.name.first.map({ bytes[$0] }) == UInt8(ascii: ":") else {
                regularStart = index
                break
            }
            try checkPseudoValue(view(field.value), of: text(field.name))
            if isName(field.name, ":method") {
                try set(&method, field.value, ":method")
            } else if isName(field.name, ":scheme") {
                try set(&scheme, field.value, ":scheme")
            } else if isName(field.name, ":path") {
                try set(&path, field.value, ":path")
            } else if isName(field.name, ":authority") {
                try set(&authority, field.value, ":authority")
            } else {
                throw Malformed(description: "unknown pseudo-header \(text(field.name))")
            }
        }
        for field in fields[regularStart...] where field.name.first.map({ bytes[$0] }) == UInt8(ascii: ":") {
            throw Malformed(description: "pseudo-header \(text(field.name)) after a regular field")
        }
        guard let method, !method.isEmpty else { throw Malformed(description: "no :method") }
        let target: Range<Int>
        if isName(method, "CONNECT") {
            // CONNECT names an authority instead of a path (`HTTP2Stream` refuses it, 405).
            guard let authority, scheme == nil, path == nil else { throw Malformed(description: "CONNECT needs :authority only") }
            target = authority
        } else {
            guard let path, scheme != nil else { throw Malformed(description: "no :scheme or :path") }
            target = path
        }
        guard !target.isEmpty else { throw Malformed(description: "empty :path") }
        var hasLength = false
        var cookies: [Range<Int>] = []
        for field in fields[regularStart...] {
            try checkRegular(view(field.name), view(field.value)) { text(field.name) }
            if isName(field.name, "content-length") { hasLength = true }
            if isName(field.name, "cookie") { cookies.append(field.value) }
        }
        let coding: BodyCoding = endStream ? .none : hasLength ? .length : .chunked
        // Each field's line is its bytes and four more; the rest is bounded by the constants.
        let bound = bytes.count + 4 * fields.count + 2 * cookies.count + 64
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
            var w = RawHeadWriter(memory)
            w.write(view(method))
            w.write(" ")
            w.write(view(target))
            w.write(" HTTP/1.1\r\n")
            // RFC 9113 §8.3.1: :authority stands for Host, and wins over a host field.
            if let authority {
                w.write("host: ")
                w.write(view(authority))
                w.write("\r\n")
            }
            for field in fields[regularStart...] {
                if isName(field.name, "cookie") || (authority != nil && isName(field.name, "host")) { continue }
                w.header(view(field.name), view(field.value))
            }
            // RFC 9113 §8.2.3: a client may split cookies into several fields; HTTP/1.1 wants one.
            if let first = cookies.first {
                w.write("cookie: ")
                w.write(view(first))
                for cookie in cookies.dropFirst() {
                    w.write("; ")
                    w.write(view(cookie))
                }
                w.write("\r\n")
            }
            if coding == .chunked {
                w.write("transfer-encoding: chunked\r\n")
            }
            w.write("\r\n")
            return w.count
        }
        return Written(coding: coding, isHead: isName(method, "HEAD"))
    }

    private static func set(_ slot: inout Range<Int>?, _ value: Range<Int>, _ name: String) throws(Malformed) {
        guard slot == nil else { throw Malformed(description: "\(name) twice") }
        slot = value
    }

    /// No pseudo-header's grammar admits SP, a CTL or DEL; in `:path` or `:method` they would
    /// break the HTTP/1.1 request line (a smuggled request).
    private static func checkPseudoValue(_ value: UnsafeRawBufferPointer, of name: @autoclosure () -> String) throws(Malformed) {
        for byte in value where byte <= 0x20 || byte == 0x7F {
            throw Malformed(description: "\(name()) holds SP, a control character or DEL")
        }
    }

    /// A lower-case token name, no connection-specific field, and a value without NUL, CR or
    /// LF (which would end the HTTP/1.1 line: a smuggled header).
    private static func checkRegular(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
                                     _ text: () -> String) throws(Malformed) {
        guard !name.isEmpty else { throw Malformed(description: "an empty field name") }
        guard name.allSatisfy(isLowerCaseTokenByte) else { throw Malformed(description: "field name \(text()) is not a lower-case token") }
        @inline(__always) func eq(_ literal: StaticString) -> Bool {
            ASCII.equals(name, 0, name.count, literal)
        }
        switch name.count {
        case 2 where eq("te"):
            guard ASCII.equals(value, 0, value.count, "trailers") else {
                throw Malformed(description: "te other than trailers")
            }
        case 7 where eq("upgrade"), 10 where eq("connection") || eq("keep-alive"),
             16 where eq("proxy-connection"), 17 where eq("transfer-encoding"):
            throw Malformed(description: "connection-specific field \(text())")
        default:
            break
        }
        for byte in value where byte == 0x0D || byte == 0x0A || byte == 0 {
            throw Malformed(description: "a value of \(text()) holds CR, LF or NUL")
        }
    }

    /// RFC 9110 §5.6.2 tchar, without upper-case letters (RFC 9113 §8.2.1).
    private static func isLowerCaseTokenByte(_ byte: UInt8) -> Bool {
        ASCII.isTokenChar(byte) && !(0x41...0x5A).contains(byte)
    }
}
