import HTTPWire
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import Gateway

/// The framing layer on an EmbeddedChannel: a client's bytes in, the frames and events the
/// streams see, and the bytes the gateway sends back, frame by frame.
struct HTTP2ServerCodecTests {
    /// Records what the codec hands the streams' side.
    final class Recorder: HTTP2FrameReceiver {
        enum Received: Equatable {
            case headers(Int32, path: String?, endStream: Bool)
            case data(Int32, String, endStream: Bool)
            case reset(Int32, HTTP2ErrorCode)
        }
        var received: [Received] = []
        var closedStreams: [Int32] = []
        var windows: [(Int32, Int)] = []
        var streamErrors: [NIOHTTP2Errors.StreamError] = []
        var connectionErrors: [Error] = []

        func receiveHeaders(_ id: HTTP2StreamID, _ headers: HTTP2HeaderFields, endStream: Bool) {
            received.append(.headers(Int32(id), path: headers.first(":path"), endStream: endStream))
        }

        func receiveData(_ id: HTTP2StreamID, _ bytes: ByteBuffer, endStream: Bool) {
            received.append(.data(Int32(id), String(buffer: bytes), endStream: endStream))
        }

        func receiveReset(_ id: HTTP2StreamID, _ code: HTTP2ErrorCode) {
            received.append(.reset(Int32(id), code))
        }

        func streamClosed(_ id: HTTP2StreamID) {
            closedStreams.append(Int32(id))
        }

        func inboundWindowChanged(_ id: HTTP2StreamID, to size: Int) {
            windows.append((Int32(id), size))
        }

        func streamError(_ error: NIOHTTP2Errors.StreamError) {
            streamErrors.append(error)
        }

        func connectionError(_ error: Error) {
            connectionErrors.append(error)
        }
    }

    struct Frame: Equatable {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
    }

    static let limits = HTTP2ServerCodec.Limits(
        maxConcurrentStreams: 4, headerListBytes: 8192, streamWindow: 65_536, maxContinuationFrames: 3,
        maxResets: 5, resetInterval: .seconds(30), maxControlFrames: 10, controlFrameInterval: .seconds(30))

    let channel: EmbeddedChannel
    let codec: HTTP2ServerCodec
    let recorder = Recorder()
    var encoder = HPACKEncoder(allocator: ByteBufferAllocator())

    /// What the codec's rate windows read as the time.
    final class Clock: @unchecked Sendable {
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    }

    let clock = Clock()

    init(limits: HTTP2ServerCodec.Limits = Self.limits) throws {
        channel = EmbeddedChannel()
        let clock = clock
        codec = HTTP2ServerCodec(limits: limits, clock: { clock.now })
        codec.receiver = recorder
        try channel.pipeline.syncOperations.addHandler(codec)
    }

    static func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        var bytes = [UInt8(payload.count >> 16 & 0xff), UInt8(payload.count >> 8 & 0xff), UInt8(payload.count & 0xff), type, flags]
        bytes += [UInt8(stream >> 24), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)]
        return bytes + payload
    }

    static func u32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// The preface and the client's SETTINGS (with `settings`), and its ACK of the gateway's.
    func start(settings: [(UInt16, UInt32)] = [], ack: Bool = true) throws {
        var payload: [UInt8] = []
        for (identifier, value) in settings { payload += [UInt8(identifier >> 8), UInt8(identifier & 0xff)] + Self.u32(value) }
        try send(HTTP2Pipeline.preface + Self.frame(4, 0, 0, payload) + (ack ? Self.frame(4, 1, 0) : []))
    }

    mutating func request(_ stream: UInt32, path: String = "/", endStream: Bool = true) throws {
        var block = ByteBuffer()
        try encoder.encode(headers: [":method": "GET", ":path": path, ":scheme": "https", ":authority": "gw"], to: &block)
        try send(Self.frame(1, 0x4 | (endStream ? 1 : 0), stream, Array(block.readableBytesView)))
    }

    /// Everything the gateway wrote so far, as frames.
    func written() throws -> [Frame] {
        var bytes = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        var frames: [Frame] = []
        while bytes.readableBytes >= 9 {
            let word = bytes.readInteger(as: UInt32.self)!
            let flags = bytes.readInteger(as: UInt8.self)!
            let stream = bytes.readInteger(as: UInt32.self)!
            let payload = bytes.readBytes(length: Int(word >> 8))!
            frames.append(Frame(type: UInt8(word & 0xff), flags: flags, stream: stream, payload: payload))
        }
        return frames
    }

    /// A response head as `ResponseComposer` writes it.
    static func head(_ text: String = "HTTP/1.1 200 OK\r\n\r\n") throws -> ByteBuffer {
        ByteBuffer(string: text)
    }

    func respond(_ stream: Int32, body: [[UInt8]]) throws -> [EventLoopFuture<Void>] {
        let id = HTTP2StreamID(stream)
        codec.sendHead(id, try Self.head(), endStream: false, promise: nil)
        var futures: [EventLoopFuture<Void>] = []
        for (index, part) in body.enumerated() {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            futures.append(promise.futureResult)
            let last = index == body.count - 1
            codec.sendData(id, ByteBuffer(bytes: part), endStream: last, promise: promise)
        }
        codec.flush()
        return futures
    }

    // MARK: Tests

    @Test func aRequestAndItsResponseAsFrames() throws {
        var test = try Self()
        try test.start()
        let greeting = try test.written()
        #expect(greeting.map(\.type) == [4, 4], "the gateway's SETTINGS, then the ACK of the client's")
        #expect(greeting[0].payload == [0, 3] + Self.u32(4) + [0, 4] + Self.u32(65_536) + [0, 6] + Self.u32(8192))
        try test.request(1)
        #expect(test.recorder.received == [.headers(1, path: "/", endStream: true)])
        _ = try test.respond(1, body: [Array("hello".utf8)])
        let response = try test.written()
        #expect(response.map(\.type) == [1, 0])
        #expect(response[1] == Frame(type: 0, flags: 1, stream: 1, payload: Array("hello".utf8)))
        #expect(test.recorder.closedStreams == [1], "both ends sent END_STREAM")
    }

    /// DATA beyond the client's window waits, in order, and goes when a WINDOW_UPDATE opens it;
    /// its promise completes only then.
    @Test func dataPastTheWindowWaitsInOrder() throws {
        var test = try Self()
        try test.start(settings: [(4, 10)])  // INITIAL_WINDOW_SIZE 10
        _ = try test.written()
        try test.request(1)
        let futures = try test.respond(1, body: [Array("abcdefg".utf8), Array("hijklmn".utf8), Array("opq".utf8)])
        var frames = try test.written().filter { $0.type == 0 }
        #expect(frames.map { String(decoding: $0.payload, as: UTF8.self) } == ["abcdefg", "hij"])
        var done: [Bool] = futures.map { _ in false }
        for (index, future) in futures.enumerated() { future.whenSuccess { done[index] = true } }
        test.channel.embeddedEventLoop.run()
        #expect(done == [true, false, false])
        try test.send(Self.frame(8, 0, 1, Self.u32(4)))
        frames = try test.written().filter { $0.type == 0 }
        #expect(frames.map { String(decoding: $0.payload, as: UTF8.self) } == ["klmn"])
        try test.send(Self.frame(8, 0, 1, Self.u32(100)))
        frames = try test.written().filter { $0.type == 0 }
        #expect(frames.map { String(decoding: $0.payload, as: UTF8.self) } == ["opq"])
        #expect(frames.last?.flags == 1, "END_STREAM on the last")
        test.channel.embeddedEventLoop.run()
        #expect(done == [true, true, true])
        #expect(test.recorder.closedStreams == [1])
    }

    /// A write's promise completing during a flush (a stream that may write again) writes and
    /// flushes more at once: the bytes already sent are not sent twice, the new ones not lost.
    @Test func writesMadeWhileAFlushCompletesGoOutOnce() throws {
        var test = try Self()
        try test.start()
        _ = try test.written()
        try test.request(1)
        let codec = test.codec
        codec.sendHead(1, try Self.head(), endStream: false, promise: nil)
        let first = test.channel.eventLoop.makePromise(of: Void.self)
        first.futureResult.whenSuccess {
            codec.sendData(1, ByteBuffer(string: "second"), endStream: true, promise: nil)
            codec.flush()
        }
        codec.sendData(1, ByteBuffer(string: "first"), endStream: false, promise: first)
        codec.flush()
        let data = try test.written().filter { $0.type == 0 }.map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(data == ["first", "second"])
    }

    // MARK: What clients get wrong

    /// The error code of the GOAWAY the gateway sent, if it sent one.
    func goAway() throws -> UInt32? {
        try written().last { $0.type == 7 }.map { UInt32($0.payload[4]) << 24 | UInt32($0.payload[5]) << 16 | UInt32($0.payload[6]) << 8 | UInt32($0.payload[7]) }
    }

    static func code(of frame: Frame) -> UInt32 {
        UInt32(frame.payload[0]) << 24 | UInt32(frame.payload[1]) << 16 | UInt32(frame.payload[2]) << 8 | UInt32(frame.payload[3])
    }

    /// After the client's SETTINGS: `bytes`, then the GOAWAY's code and the error handed on.
    static func connectionError(after bytes: [UInt8], limits: HTTP2ServerCodec.Limits = limits, start: Bool = true) throws -> (UInt32?, Error?) {
        let test = try Self(limits: limits)
        if start { try test.start() } else { try test.send(HTTP2Pipeline.preface) }
        _ = try test.written()
        try test.send(bytes)
        return (try test.goAway(), test.recorder.connectionErrors.first)
    }

    @Test func framingErrorsEndTheConnectionWithTheirCodes() throws {
        // Not the preface: no GOAWAY (the client does not speak HTTP/2), the error is handed on.
        let notH2 = try Self()
        try notH2.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(notH2.recorder.connectionErrors.first is NIOHTTP2Errors.BadClientMagic)
        // The first frame must be SETTINGS.
        var (code, error) = try Self.connectionError(after: Self.frame(6, 0, 0, [UInt8](repeating: 0, count: 8)), start: false)
        #expect(code == 1 && error is NIOHTTP2Errors.MissingPreface)
        // Larger than SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR before the payload is read.
        (code, _) = try Self.connectionError(after: [0x00, 0x40, 0x01, 0, 0, 0, 0, 0, 1])
        #expect(code == 6)
        // DATA on a stream never opened; an even (server) stream id; PUSH_PROMISE from a client.
        (code, _) = try Self.connectionError(after: Self.frame(0, 0, 3, [1, 2]))
        #expect(code == 1)
        (code, error) = try Self.connectionError(after: Self.frame(1, 5, 2, [0x82]))
        #expect(code == 1 && error is NIOHTTP2Errors.InvalidStreamIDForPeer)
        (code, _) = try Self.connectionError(after: Self.frame(5, 4, 1, [0, 0, 0, 2, 0x82]))
        #expect(code == 1)
        // Padding as long as the frame (3 bytes of it in a frame of 3).
        (code, _) = try Self.connectionError(after: Self.frame(1, 0x0d, 1, [3, 0x82, 0]))
        #expect(code == 1)
        // A frame inside a header block.
        (code, _) = try Self.connectionError(after: Self.frame(1, 0, 1, [0x82]) + Self.frame(6, 0, 0, [UInt8](repeating: 0, count: 8)))
        #expect(code == 1)
        // Bad SETTINGS values.
        (code, _) = try Self.connectionError(after: Self.frame(4, 0, 0, [0, 2] + Self.u32(2)))
        #expect(code == 1)
        (code, _) = try Self.connectionError(after: Self.frame(4, 0, 0, [0, 4] + Self.u32(1 << 31)))
        #expect(code == 3)
        (code, _) = try Self.connectionError(after: Self.frame(4, 0, 0, [0, 5] + Self.u32(100)))
        #expect(code == 1)
        // A zero or overflowing connection window increment.
        (code, _) = try Self.connectionError(after: Self.frame(8, 0, 0, Self.u32(0)))
        #expect(code == 1)
        (code, error) = try Self.connectionError(after: Self.frame(8, 0, 0, Self.u32(0x7fff_ffff)))
        #expect(code == 3 && error is NIOHTTP2Errors.FlowControlViolation)
        // A header block that does not decode.
        (code, _) = try Self.connectionError(after: Self.frame(1, 5, 1, [0xff, 0xff, 0xff, 0xff, 0x7f]))
        #expect(code == 9)
    }

    @Test func floodsEndTheConnection() throws {
        var limits = Self.limits
        // CONTINUATION frames past the bound (CVE-2024-27316).
        var continuation = Self.frame(1, 0, 1, [0x82])
        for _ in 0..<4 { continuation += Self.frame(9, 0, 1, [0x84]) }
        var (code, error) = try Self.connectionError(after: continuation)
        #expect(code == 11 && error is NIOHTTP2Errors.ExcessiveContinuationFrames)
        // A header block larger than the header list may be, before it ends.
        (code, error) = try Self.connectionError(after: Self.frame(1, 0, 1, [UInt8](repeating: 0x82, count: 16_000))
                                                 + Self.frame(9, 0, 1, [UInt8](repeating: 0x82, count: 1000)))
        #expect(code == 1 && error is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock)
        // PINGs past max_control_frames (the client's SETTINGS counted too); each answered until then.
        let pings = try Self()
        try pings.start()
        _ = try pings.written()
        try pings.send(Self.frame(6, 0, 0, [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(try pings.written() == [Frame(type: 6, flags: 1, stream: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8])])
        for _ in 0..<9 { try pings.send(Self.frame(6, 0, 0, [UInt8](repeating: 0, count: 8))) }
        #expect(try pings.goAway() == 11 && pings.recorder.connectionErrors.first is NIOHTTP2Errors.ExcessiveControlFrames)
        // Empty DATA frames in a row.
        limits.maxEmptyDataFrames = 3
        var test = try Self(limits: limits)
        try test.start()
        try test.request(1, endStream: false)
        for _ in 0..<4 { try test.send(Self.frame(0, 0, 1)) }
        #expect(try test.goAway() == 11 && test.recorder.connectionErrors.first is NIOHTTP2Errors.ExcessiveEmptyDataFrames)
        // Rapid reset (CVE-2023-44487): more resets than max_resets in the interval.
        test = try Self()
        try test.start()
        for stream in stride(from: UInt32(1), through: 11, by: 2) {
            try test.request(stream)
            try test.send(Self.frame(3, 0, stream, Self.u32(8)))
        }
        #expect(try test.goAway() == 11 && test.recorder.connectionErrors.first is NIOHTTP2Errors.ExcessiveRSTFrames)
        #expect(test.recorder.received.filter { if case .reset = $0 { true } else { false } }.count == 5)
    }

    /// Over the stream limit: refused (REFUSED_STREAM) while the client may not know it yet,
    /// a connection error once it acknowledged the SETTINGS.
    @Test func streamsOverTheLimit() throws {
        var test = try Self()
        try test.start(ack: false)
        for stream in [1, 3, 5, 7, 9] as [UInt32] { try test.request(stream, endStream: false) }
        let refused = try test.written().filter { $0.type == 3 }
        #expect(refused.map(\.stream) == [9] && refused.map(Self.code) == [7])
        try test.send(Self.frame(4, 1, 0))
        try test.request(11, endStream: false)
        #expect(try test.goAway() == 1 && test.recorder.connectionErrors.first is NIOHTTP2Errors.MaxStreamsViolation)
    }

    @Test func streamErrorsResetOnlyTheirStream() throws {
        var test = try Self()
        try test.start()
        _ = try test.written()
        // Trailers without END_STREAM.
        try test.request(1, endStream: false)
        var block = ByteBuffer()
        try test.encoder.encode(headers: ["x-trailer": "1"], to: &block)
        try test.send(Self.frame(1, 4, 1, Array(block.readableBytesView)))
        var frames = try test.written()
        #expect(frames.map(\.type) == [3] && frames.map(Self.code) == [1])
        #expect(test.recorder.streamErrors.first?.baseError is NIOHTTP2Errors.TrailersWithoutEndStream)
        #expect(test.recorder.closedStreams == [1])
        // DATA past the stream's window (the connection's is larger): FLOW_CONTROL_ERROR for it.
        test.codec.send(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: 1 << 20)), promise: nil)
        try test.request(3, endStream: false)
        for _ in 0..<4 { try test.send(Self.frame(0, 0, 3, [UInt8](repeating: 0, count: 16_384))) }
        try test.send(Self.frame(0, 0, 3, [1]))
        frames = try test.written().filter { $0.type == 3 }
        #expect(frames.map(\.stream) == [3] && frames.map(Self.code) == [3])
        // A zero window increment for a stream.
        try test.request(5, endStream: false)
        try test.send(Self.frame(8, 0, 5, Self.u32(0)))
        frames = try test.written().filter { $0.type == 3 }
        #expect(frames.map(\.stream) == [5] && frames.map(Self.code) == [1])
        // The connection goes on.
        try test.request(7)
        #expect(test.recorder.received.last == .headers(7, path: "/", endStream: true))
        #expect(try test.goAway() == nil && test.recorder.connectionErrors.isEmpty)
    }

    /// After the gateway reset a stream, what the client had already sent for it is ignored
    /// (no RST in reply, nothing counted), and still counts against the connection's window.
    @Test func framesForAStreamTheGatewayResetAreIgnored() throws {
        var test = try Self()
        try test.start()
        try test.request(1, endStream: false)
        test.codec.send(HTTP2Frame(streamID: 1, payload: .rstStream(.noError)), promise: nil)
        test.codec.flush()
        _ = try test.written()
        test.recorder.windows.removeAll()
        try test.send(Self.frame(0, 0, 1, [1, 2, 3]) + Self.frame(0, 1, 1, [4]))
        #expect(try test.written().isEmpty)
        #expect(test.recorder.streamErrors.isEmpty && test.recorder.received.count == 1)
        #expect(test.recorder.windows.map(\.0) == [0, 0] && test.recorder.windows.last?.1 == 65_535 - 4)
    }

    /// A head the encoder cannot read (never composed; a bug if it were) resets its stream
    /// instead of sending something else; the connection goes on.
    @Test func aHeadThatIsNoHeadResetsItsStream() throws {
        var test = try Self()
        try test.start()
        _ = try test.written()
        try test.request(1)
        let promise = test.channel.eventLoop.makePromise(of: Void.self)
        test.codec.sendHead(1, ByteBuffer(string: "not a status line\r\n\r\n"), endStream: false, promise: promise)
        test.codec.flush()
        #expect(try test.written() == [Frame(type: 3, flags: 0, stream: 1, payload: Self.u32(2))], "RST_STREAM(INTERNAL_ERROR), no HEADERS")
        #expect(throws: (any Error).self) { try promise.futureResult.wait() }
        #expect(test.recorder.closedStreams == [1] && test.recorder.connectionErrors.isEmpty)
        try test.request(3)
        _ = try test.respond(3, body: [Array("ok".utf8)])
        #expect(try test.written().map(\.type) == [1, 0])
    }

    @Test func theClientsSettingsShapeWhatIsSent() throws {
        var test = try Self()
        // A smaller header table: the next block starts with a table size update to 0.
        try test.start(settings: [(1, 0)])
        _ = try test.written()
        try test.request(1)
        // A body past the frame size goes in frames of that size; a header block past it in CONTINUATION frames.
        test.codec.sendHead(1, try Self.head("HTTP/1.1 200 OK\r\nX-Big: \(String(repeating: "b", count: 20_000))\r\n\r\n"), endStream: false, promise: nil)
        test.codec.sendData(1, ByteBuffer(repeating: 7, count: 20_000), endStream: true, promise: nil)
        test.codec.flush()
        let frames = try test.written()
        #expect(frames.map(\.type) == [1, 9, 0, 0])
        #expect(frames[0].payload.first == 0x20 && frames[0].flags == 0 && frames[1].flags == 4)
        #expect(frames[2].payload.count == 16_384 && frames[3].payload.count == 3616 && frames[3].flags == 1)
        // The block reads back whole.
        var block = ByteBuffer(bytes: frames[0].payload + frames[1].payload)
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator(), maxDynamicTableSize: 0, maxHeaderListSize: 1 << 20)
        #expect(try decoder.decodeHeaders(from: &block).first(name: "x-big")?.count == 20_000)
    }

    /// A larger SETTINGS_INITIAL_WINDOW_SIZE lets out DATA that waited.
    @Test func aLargerInitialWindowLetsWaitingDataGo() throws {
        var test = try Self()
        try test.start(settings: [(4, 3)])
        _ = try test.written()
        try test.request(1)
        _ = try test.respond(1, body: [Array("abcdef".utf8)])
        #expect(try test.written().filter { $0.type == 0 }.map(\.payload) == [Array("abc".utf8)])
        try test.send(Self.frame(4, 0, 0, [0, 4] + Self.u32(100)))
        let frames = try test.written()
        #expect(frames.filter { $0.type == 0 }.map(\.payload) == [Array("def".utf8)])
        #expect(test.recorder.closedStreams == [1])
    }

    /// The rate limits count within their interval: resets spread over time are a client
    /// cancelling requests, not a flood.
    @Test func resetsSpreadOverTheIntervalAreNotAFlood() throws {
        var test = try Self()
        try test.start()
        var stream: UInt32 = 1
        for _ in 0..<3 {
            for _ in 0..<5 {  // max_resets in each interval
                try test.request(stream)
                try test.send(Self.frame(3, 0, stream, Self.u32(8)))
                stream += 2
            }
            test.clock.now = test.clock.now + .seconds(31)  // reset_interval is 30 s
        }
        #expect(try test.goAway() == nil && test.recorder.connectionErrors.isEmpty)
        // Six within one interval is one too many.
        for _ in 0..<6 {
            try test.request(stream)
            try test.send(Self.frame(3, 0, stream, Self.u32(8)))
            stream += 2
        }
        #expect(try test.goAway() == 11 && test.recorder.connectionErrors.first is NIOHTTP2Errors.ExcessiveRSTFrames)
    }
}
