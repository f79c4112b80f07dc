import HTTPWire
import NIOCore

/// How a response body is framed towards the client; it differs from the upstream's framing
/// when the gateway re-chunks (a close-delimited body to an HTTP/1.1 client keeps the client's
/// connection alive) or de-chunks (HTTP/1.0 clients know no chunked coding).
enum ClientFraming: Equatable {
    /// No body, or a Content-Length body: the upstream's length header is forwarded.
    case asIs
    case chunked
    /// Body until the gateway closes the connection (HTTP/1.0 clients only).
    case untilClose

    static func choose(upstream: BodyFraming, clientMinorVersion: Int) -> ClientFraming {
        switch upstream {
        case .none, .length: .asIs
        case .chunked, .untilClose: clientMinorVersion == 1 ? .chunked : .untilClose
        }
    }
}

/// Writes the head of a response as the gateway forwards it to the client.
enum ResponseHeadWriter {
    enum Persistence {
        /// HTTP/1.1 and keep-alive: nothing to say.
        case implicit
        /// An HTTP/1.0 client that asked for keep-alive.
        case keepAlive
        case close
    }

    static func write(
        _ head: HTTPHead, framing: ClientFraming, persistence: Persistence, requestID: RequestID,
        extraHeaders: [(String, String)], rateLimit: RateLimitFields? = nil, replaceCORS: Bool = false, into out: inout ByteBuffer
    ) {
        var bound = head.raw.readableBytes + head.fields.count + 160 + RawHeadWriter.length(of: requestID) + (rateLimit?.length ?? 0)
        for (name, value) in extraHeaders { bound += name.utf8.count + value.utf8.count + 4 }
        head.raw.withUnsafeReadableBytes { raw in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
                var w = RawHeadWriter(memory)
                w.write("HTTP/1.1 ")
                w.write(UnsafeRawBufferPointer(rebasing: raw[head.part2]))
                w.write(" ")
                w.write(UnsafeRawBufferPointer(rebasing: raw[head.part3]))
                w.write("\r\n")
                var hasRequestID = false
                for field in head.fields where !field.hopByHop {
                    if field.kind == .xRequestID { hasRequestID = true }
                    let name = field.name(in: raw)
                    // Where the gateway applies a CORS policy, the upstream's own CORS headers go.
                    if replaceCORS, Self.isCORSHeader(name) { continue }
                    w.header(name, field.value(in: raw))
                }
                if framing == .chunked {
                    w.write("Transfer-Encoding: chunked\r\n")
                }
                switch persistence {
                case .implicit: break
                case .keepAlive: w.write("Connection: keep-alive\r\n")
                case .close: w.write("Connection: close\r\n")
                }
                if !hasRequestID {
                    w.write("X-Request-Id: ")
                    w.write(requestID)
                    w.write("\r\n")
                }
                for (name, value) in extraHeaders {
                    w.header(name, value)
                }
                rateLimit?.write(into: &w)
                w.write("\r\n")
                return w.count
            }
        }
    }

    /// `Access-Control-Allow-*`, `Access-Control-Expose-Headers`, `Access-Control-Max-Age`.
    static func isCORSHeader(_ name: UnsafeRawBufferPointer) -> Bool {
        let prefix: StaticString = "access-control-"
        guard name.count > prefix.utf8CodeUnitCount else { return false }
        for i in 0..<prefix.utf8CodeUnitCount where ASCII.lowercased(name[i]) != prefix.utf8Start[i] { return false }
        return true
    }
}
