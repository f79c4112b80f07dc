import NIOCore

/// Writes body bytes as HTTP/1.1 chunks. The gateway re-frames every chunked body it forwards
/// (it decodes, then encodes), so what reaches the other side is always well-formed framing
/// of its own making, whatever the sender wrote.
public enum ChunkedEncoding {
    /// The chunk header for `count` bytes: hex size and CRLF.
    public static func header(_ count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        writeHex(count, into: &buffer)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    public static func writeHex(_ value: Int, into buffer: inout ByteBuffer) {
        let digits: StaticString = "0123456789abcdef"
        var shift = max(0, (Int.bitWidth - value.leadingZeroBitCount + 3) / 4 * 4 - 4)
        while shift >= 0 {
            buffer.writeInteger(digits.utf8Start[(value >> shift) & 0xF])
            shift -= 4
        }
    }

    public static let crlf: ByteBuffer = ByteBuffer(staticString: "\r\n")
    public static let lastChunk: ByteBuffer = ByteBuffer(staticString: "0\r\n\r\n")
}
