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

        func receiveHeaders(_ id: HTTP2StreamID, _ headers: HPACKHeaders, endStream: Bool) {
            received.append(.headers(Int32(id), path: headers.first(name: ":path"), endStream: endStream))
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

    init(limits: HTTP2ServerCodec.Limits = Self.limits) throws {
        channel = EmbeddedChannel()
        codec = HTTP2ServerCodec(limits: limits)
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

    func respond(_ stream: Int32, body: [[UInt8]], promises: Bool = false) -> [EventLoopFuture<Void>] {
        let id = HTTP2StreamID(stream)
        codec.send(HTTP2Frame(streamID: id, payload: .headers(.init(headers: [":status": "200"]))), promise: nil)
        var futures: [EventLoopFuture<Void>] = []
        for (index, part) in body.enumerated() {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            futures.append(promise.futureResult)
            let last = index == body.count - 1
            codec.send(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(ByteBuffer(bytes: part)), endStream: last))), promise: promise)
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
        _ = test.respond(1, body: [Array("hello".utf8)])
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
        let futures = test.respond(1, body: [Array("abcdefg".utf8), Array("hijklmn".utf8), Array("opq".utf8)])
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
        codec.send(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: [":status": "200"]))), promise: nil)
        let first = test.channel.eventLoop.makePromise(of: Void.self)
        first.futureResult.whenSuccess {
            codec.send(HTTP2Frame(streamID: 1, payload: .data(.init(data: .byteBuffer(ByteBuffer(string: "second")), endStream: true))), promise: nil)
            codec.flush()
        }
        codec.send(HTTP2Frame(streamID: 1, payload: .data(.init(data: .byteBuffer(ByteBuffer(string: "first"))))), promise: first)
        codec.flush()
        let data = try test.written().filter { $0.type == 0 }.map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(data == ["first", "second"])
    }
}
