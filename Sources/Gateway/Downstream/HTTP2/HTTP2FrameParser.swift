import NIOCore
import NIOHTTP2

/// One HTTP/2 frame as a client sent it, its layout checked (RFC 9113 §6): lengths, padding,
/// and which frames may or may not name a stream. What the frame means for the connection's
/// state is `HTTP2ServerCodec`'s to decide.
enum HTTP2WireFrame: Equatable {
    /// `flowControlled` is the frame's whole payload (padding included), which flow control counts.
    case data(stream: UInt32, bytes: ByteBuffer, endStream: Bool, flowControlled: Int)
    case headers(stream: UInt32, block: ByteBuffer, endStream: Bool, endHeaders: Bool, dependsOn: UInt32?)
    case continuation(stream: UInt32, block: ByteBuffer, endHeaders: Bool)
    case priority(stream: UInt32, dependsOn: UInt32)
    case rstStream(stream: UInt32, code: UInt32)
    case settings([Setting])
    case settingsAck
    case ping(UInt64, ack: Bool)
    case goAway(lastStream: UInt32, code: UInt32)
    case windowUpdate(stream: UInt32, increment: UInt32)
    case pushPromise
    /// A frame type this side does not know: ignored (§5.5).
    case unknown

    struct Setting: Equatable {
        var identifier: UInt16
        var value: UInt32
    }
}

/// A frame the client got wrong: a connection error (`stream == 0`) or one of a stream.
struct HTTP2WireError: Error, Equatable {
    var code: HTTP2ErrorCode
    var stream: UInt32 = 0
    var reason: String
}

/// Reads frames out of the bytes received so far (pure: no I/O, no state but the bound).
struct HTTP2FrameParser {
    static let headerLength = 9
    /// SETTINGS_MAX_FRAME_SIZE as the gateway announces it (the protocol's default).
    var maxFrameSize = 16_384

    /// The next whole frame in `buffer` (consumed), nil until one has arrived.
    func next(from buffer: inout ByteBuffer) throws(HTTP2WireError) -> HTTP2WireFrame? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= Self.headerLength,
              let word = buffer.getInteger(at: start, as: UInt32.self),
              let flags = buffer.getInteger(at: start + 4, as: UInt8.self),
              let streamWord = buffer.getInteger(at: start + 5, as: UInt32.self)
        else { return nil }
        let length = Int(word >> 8)
        let type = UInt8(truncatingIfNeeded: word)
        // Checked before the payload arrives: a peer cannot make this side buffer an oversized frame.
        guard length <= maxFrameSize else { throw HTTP2WireError(code: .frameSizeError, reason: "frame of \(length) bytes") }
        guard buffer.readableBytes >= Self.headerLength + length else { return nil }
        buffer.moveReaderIndex(forwardBy: Self.headerLength)
        var payload = buffer.readSlice(length: length)!
        return try Self.frame(type: type, flags: flags, stream: streamWord & 0x7fff_ffff, payload: &payload)
    }

    private static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: inout ByteBuffer) throws(HTTP2WireError) -> HTTP2WireFrame {
        let length = payload.readableBytes
        switch type {
        case 0:  // DATA
            guard stream != 0 else { throw protocolError("DATA on stream 0") }
            try unpad(&payload, flags: flags)
            return .data(stream: stream, bytes: payload, endStream: flags & 0x1 != 0, flowControlled: length)
        case 1:  // HEADERS
            guard stream != 0 else { throw protocolError("HEADERS on stream 0") }
            try unpad(&payload, flags: flags)
            var dependsOn: UInt32?
            if flags & 0x20 != 0 {
                guard let word = payload.readInteger(as: UInt32.self), payload.readInteger(as: UInt8.self) != nil else {
                    throw HTTP2WireError(code: .frameSizeError, reason: "HEADERS too short for its priority")
                }
                dependsOn = word & 0x7fff_ffff
            }
            return .headers(stream: stream, block: payload, endStream: flags & 0x1 != 0, endHeaders: flags & 0x4 != 0, dependsOn: dependsOn)
        case 2:  // PRIORITY
            guard stream != 0 else { throw protocolError("PRIORITY on stream 0") }
            guard length == 5, let word = payload.readInteger(as: UInt32.self) else {
                throw HTTP2WireError(code: .frameSizeError, stream: stream, reason: "PRIORITY of \(length) bytes")
            }
            return .priority(stream: stream, dependsOn: word & 0x7fff_ffff)
        case 3:  // RST_STREAM
            guard stream != 0 else { throw protocolError("RST_STREAM on stream 0") }
            guard length == 4, let code = payload.readInteger(as: UInt32.self) else {
                throw HTTP2WireError(code: .frameSizeError, reason: "RST_STREAM of \(length) bytes")
            }
            return .rstStream(stream: stream, code: code)
        case 4:  // SETTINGS
            guard stream == 0 else { throw protocolError("SETTINGS on a stream") }
            if flags & 0x1 != 0 {
                guard length == 0 else { throw HTTP2WireError(code: .frameSizeError, reason: "SETTINGS ACK with a payload") }
                return .settingsAck
            }
            guard length % 6 == 0 else { throw HTTP2WireError(code: .frameSizeError, reason: "SETTINGS of \(length) bytes") }
            var settings: [HTTP2WireFrame.Setting] = []
            settings.reserveCapacity(length / 6)
            while let identifier = payload.readInteger(as: UInt16.self), let value = payload.readInteger(as: UInt32.self) {
                settings.append(.init(identifier: identifier, value: value))
            }
            return .settings(settings)
        case 5:  // PUSH_PROMISE: servers push, clients never (§8.4)
            return .pushPromise
        case 6:  // PING
            guard stream == 0 else { throw protocolError("PING on a stream") }
            guard length == 8, let opaque = payload.readInteger(as: UInt64.self) else {
                throw HTTP2WireError(code: .frameSizeError, reason: "PING of \(length) bytes")
            }
            return .ping(opaque, ack: flags & 0x1 != 0)
        case 7:  // GOAWAY
            guard stream == 0 else { throw protocolError("GOAWAY on a stream") }
            guard length >= 8, let last = payload.readInteger(as: UInt32.self), let code = payload.readInteger(as: UInt32.self) else {
                throw HTTP2WireError(code: .frameSizeError, reason: "GOAWAY of \(length) bytes")
            }
            return .goAway(lastStream: last & 0x7fff_ffff, code: code)
        case 8:  // WINDOW_UPDATE
            guard length == 4, let word = payload.readInteger(as: UInt32.self) else {
                throw HTTP2WireError(code: .frameSizeError, reason: "WINDOW_UPDATE of \(length) bytes")
            }
            return .windowUpdate(stream: stream, increment: word & 0x7fff_ffff)
        case 9:  // CONTINUATION
            guard stream != 0 else { throw protocolError("CONTINUATION on stream 0") }
            return .continuation(stream: stream, block: payload, endHeaders: flags & 0x4 != 0)
        default:
            return .unknown
        }
    }

    /// Drops a PADDED frame's pad length and padding (§6.1): padding as long as the payload is an error.
    private static func unpad(_ payload: inout ByteBuffer, flags: UInt8) throws(HTTP2WireError) {
        guard flags & 0x8 != 0 else { return }
        guard let pad = payload.readInteger(as: UInt8.self), Int(pad) <= payload.readableBytes else {
            throw protocolError("padding longer than the frame")
        }
        payload.moveWriterIndex(to: payload.writerIndex - Int(pad))
    }

    private static func protocolError(_ reason: String) -> HTTP2WireError {
        HTTP2WireError(code: .protocolError, reason: reason)
    }
}
