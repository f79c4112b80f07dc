import NIOCore

/// Writes HTTP/2 frames (RFC 9113 §4.1, §6) into one buffer, which goes to TLS as one write on
/// the next flush.
extension ByteBuffer {
    /// A frame header whose length is filled in by `endHTTP2Frame(at:)`; returns where it starts.
    mutating func beginHTTP2Frame(type: UInt8, flags: UInt8, stream: UInt32) -> Int {
        let start = writerIndex
        writeInteger(UInt32(type))  // 24-bit length (patched) and the type
        writeInteger(flags)
        writeInteger(stream)
        return start
    }

    /// Patches the length of the frame begun at `start` to what was written since.
    mutating func endHTTP2Frame(at start: Int) {
        let length = writerIndex - start - HTTP2FrameParser.headerLength
        let type = getInteger(at: start + 3, as: UInt8.self)!
        setInteger(UInt32(length) << 8 | UInt32(type), at: start)
    }

    mutating func writeHTTP2Frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: (inout ByteBuffer) -> Void) {
        let start = beginHTTP2Frame(type: type, flags: flags, stream: stream)
        payload(&self)
        endHTTP2Frame(at: start)
    }
}
