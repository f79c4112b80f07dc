import HTTPWire
import NIOCore

/// A response the gateway makes itself (errors, preflights, cache hits): status, a few
/// headers and a small body, encoded in one buffer.
struct LocalResponse {
    var status: Int
    var headers: [(String, String)]
    var body: ByteBuffer
    /// The connection closes after this response.
    var close: Bool

    /// The short JSON error body every gateway error uses: `{"error": "...", "request_id": "..."}`.
    static func error(_ status: Int, _ message: String, requestID: RequestID, close: Bool, extraHeaders: [(String, String)] = []) -> LocalResponse {
        var body = ByteBuffer()
        body.writeStaticString("{\"error\":")
        JSONString.write(message, into: &body)
        body.writeStaticString(",\"request_id\":")
        JSONString.write(requestID.description, into: &body)
        body.writeStaticString("}\n")
        return LocalResponse(
            status: status,
            headers: [("Content-Type", "application/json")] + extraHeaders,
            body: body,
            close: close
        )
    }

    /// The whole response; `headOnly` for a HEAD request (Content-Length kept, body left out).
    func encode(date: String, requestID: RequestID?, headOnly: Bool = false, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var out = allocator.buffer(capacity: 192 + body.readableBytes)
        out.writeStaticString("HTTP/1.1 ")
        out.writeString(String(status))
        out.writeStaticString(" ")
        out.writeString(StatusReason.phrase(status))
        out.writeStaticString("\r\nDate: ")
        out.writeString(date)
        out.writeStaticString("\r\nContent-Length: ")
        out.writeString(String(body.readableBytes))
        out.writeStaticString("\r\n")
        for (name, value) in headers {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        if let requestID {
            out.writeStaticString("X-Request-Id: ")
            requestID.write(into: &out)
            out.writeStaticString("\r\n")
        }
        if close {
            out.writeStaticString("Connection: close\r\n")
        }
        out.writeStaticString("\r\n")
        if !headOnly {
            out.writeImmutableBuffer(body)
        }
        return out
    }
}

/// JSON string literals without Foundation.
enum JSONString {
    static func write(_ text: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("\"")
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            case 0x09: buffer.writeStaticString("\\t")
            case 0..<0x20:
                buffer.writeStaticString("\\u00")
                let hex = Array("0123456789abcdef".utf8)
                buffer.writeInteger(hex[Int(byte >> 4)])
                buffer.writeInteger(hex[Int(byte & 0xF)])
            default:
                buffer.writeInteger(byte)
            }
        }
        buffer.writeStaticString("\"")
    }

    static func quoted(_ text: String) -> String {
        var buffer = ByteBuffer()
        write(text, into: &buffer)
        return String(buffer: buffer)
    }
}
