import NIOCore

/// A response the gateway makes itself (errors, preflights, 429s): status, a few headers and a
/// small body. `ResponseComposer` writes it with everything the exchange's other responses get.
struct LocalResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: ByteBuffer
    /// The client connection closes after it, whatever else holds (the request cannot be
    /// trusted to have ended where it seems to).
    var forceClose = false
    /// Counted in `gateway_errors_total{kind}` when set.
    var errorKind: String?

    init(status: Int, headers: [(String, String)] = [], body: ByteBuffer = ByteBuffer(), forceClose: Bool = false,
         errorKind: String? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.forceClose = forceClose
        self.errorKind = errorKind
    }

    /// The short JSON error body every gateway error uses: `{"error": "...", "request_id": "..."}`.
    static func error(_ status: Int, _ message: String, requestID: RequestID, errorKind: String?,
                      extraHeaders: [(String, String)] = [], forceClose: Bool = false) -> LocalResponse {
        var body = ByteBuffer()
        body.writeStaticString("{\"error\":")
        JSONString.write(message, into: &body)
        body.writeStaticString(",\"request_id\":")
        JSONString.write(requestID.description, into: &body)
        body.writeStaticString("}\n")
        return LocalResponse(status: status, headers: [("Content-Type", "application/json")] + extraHeaders, body: body,
                             forceClose: forceClose, errorKind: errorKind)
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
}
