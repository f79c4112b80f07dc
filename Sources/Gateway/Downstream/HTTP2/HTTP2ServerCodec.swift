import HTTPWire
import NIOCore
import NIOHPACK
import NIOHTTP2

/// What the framing layer hands on: a stream's frames and its end, the windows the client
/// sends into, and errors (after the codec answered them). `HTTP2Connection` is the one.
protocol HTTP2FrameReceiver: AnyObject {
    func receiveHeaders(_ id: HTTP2StreamID, _ headers: HTTP2HeaderFields, endStream: Bool)
    func receiveData(_ id: HTTP2StreamID, _ bytes: ByteBuffer, endStream: Bool)
    /// The client reset the stream.
    func receiveReset(_ id: HTTP2StreamID, _ code: HTTP2ErrorCode)
    /// The stream ended: both sides finished it, or either reset it.
    func streamClosed(_ id: HTTP2StreamID)
    /// A receive window now (it shrinks with DATA, grows with the gateway's WINDOW_UPDATEs).
    func inboundWindowChanged(_ id: HTTP2StreamID, to size: Int)
    /// The codec reset a stream the client got wrong (`NIOHTTP2Errors.StreamError`).
    func streamError(_ error: NIOHTTP2Errors.StreamError)
    /// The codec sent GOAWAY for a connection error; the connection is to close.
    func connectionError(_ error: Error)
}

/// The server side of HTTP/2's framing layer (RFC 9113), between TLS (or the socket) and
/// `HTTP2Connection`: it reads frames, keeps the streams' states, both directions' flow-control
/// windows and the peer's settings, answers SETTINGS and PING, and writes what the streams send
/// as frames gathered into one buffer per flush (one TLS record for a small response).
///
/// It calls `HTTP2Connection` directly (`HTTP2FrameReceiver`), and the streams write through
/// `send(_:promise:)`: no pipeline step or boxed frame per frame. Frames and errors keep
/// NIOHTTP2's types. It replaced NIOHTTP2Handler, whose general machinery (a state machine
/// copied per frame, frame enums and buffers, a user event per window change) cost about a fifth
/// of the gateway's CPU per HTTP/2 request.
///
/// Errors follow §5.4: a connection error sends GOAWAY with its code and ends the connection
/// (the error goes to `HTTP2Connection`, which counts and closes); a stream error sends
/// RST_STREAM and the connection goes on. The protections (rapid reset, CONTINUATION and
/// control-frame floods, empty DATA, streams over the limit, too many stream errors, output
/// that piles up) are connection errors named by NIOHTTP2's error types, so they are counted
/// under the same reasons.
final class HTTP2ServerCodec: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// Set when the connection is installed; let go when the codec leaves the pipeline.
    var receiver: HTTP2FrameReceiver?
    private var context: ChannelHandlerContext?

    struct Limits {
        var maxConcurrentStreams: Int
        var headerListBytes: Int
        /// The receive window announced for each stream (SETTINGS_INITIAL_WINDOW_SIZE).
        var streamWindow: Int
        var maxContinuationFrames: Int
        var maxResets: Int
        var resetInterval: TimeAmount
        var maxControlFrames: Int
        var controlFrameInterval: TimeAmount
        /// Stream errors a client may cause within `resetInterval` (NIOHTTP2's default).
        var maxStreamErrors = 200
        /// Empty DATA frames without END_STREAM in a row (they cost work and carry nothing).
        var maxEmptyDataFrames = 100
        /// Control-frame answers written while the client does not read (NIOHTTP2's default).
        var maxBufferedControlFrames = 10_000
    }

    private struct Stream {
        /// The client may still send (no END_STREAM from it yet).
        var remoteOpen: Bool
        /// The gateway may still send.
        var localOpen = true
        var sendWindow: Int
        var recvWindow: Int
        /// DATA waiting for the client's window, in order.
        var queued: CircularBuffer<QueuedData>?
    }

    private struct QueuedData {
        var bytes: ByteBuffer
        var endStream: Bool
        var promise: EventLoopPromise<Void>?
    }

    /// A header block arriving in several frames (HEADERS, then CONTINUATION).
    private struct HeaderBlock {
        var stream: UInt32
        var block: ByteBuffer
        var endStream: Bool
        var selfDependent: Bool
        var continuations = 0
    }

    /// A count of events within a window of time (rapid reset, control frames, stream errors).
    private struct RateWindow {
        var start = NIODeadline.distantPast
        var count = 0

        /// Counts one; true when more than `limit` fell within `interval`.
        mutating func exceeds(_ limit: Int, within interval: TimeAmount, now: NIODeadline) -> Bool {
            if now - start > interval {
                start = now
                count = 0
            }
            count += 1
            return count > limit
        }
    }

    private enum Phase {
        case preface, firstSettings, open, failed
    }

    static let defaultWindow = 65_535
    static let maxWindow = Int(Int32.max)

    private let limits: Limits
    private var phase = Phase.preface
    private var parser = HTTP2FrameParser()
    private var input: ByteBuffer?
    private var reading = false
    private var decoder: HPACKRequestDecoder
    /// The last header block, decoded (its storage reused block after block).
    private var headers = HTTP2HeaderFields()
    /// The client changed SETTINGS_HEADER_TABLE_SIZE: the next header block says the gateway's
    /// table is empty (it never uses one).
    private var tableSizeUpdateDue = false
    private var headerBlock: HeaderBlock?

    private var streams: [UInt32: Stream] = [:]
    /// Streams with DATA waiting for a window, in the order they started waiting.
    private var waitingStreams: [UInt32] = []
    private var lastClientStream: UInt32 = 0
    private var goAwaySent = false
    private var localSettingsAcked = false

    private var connectionSendWindow = HTTP2ServerCodec.defaultWindow
    private var connectionRecvWindow = HTTP2ServerCodec.defaultWindow
    private var peerInitialWindow = HTTP2ServerCodec.defaultWindow
    private var peerMaxFrameSize = 16_384

    private var resets = RateWindow()
    private var controlFrames = RateWindow()
    private var streamErrors = RateWindow()
    private var emptyDataFrames = 0
    private var writable = true
    private var readHeldBack = false
    private var controlFramesWhileBlocked = 0

    /// Frames written since the last flush, and their promises.
    private var output = ByteBuffer()
    /// The buffer last written, kept for the next flush.
    private var spare: ByteBuffer?
    private var outputPromises: [EventLoopPromise<Void>] = []
    /// Events for `HTTP2Connection`, delivered after the frame or write that caused them.
    private var pendingEvents: [Event] = []
    private var delivering = false

    private enum Event {
        case closed(UInt32)
        case window(UInt32, Int)
    }

    /// The time the rate windows count in (injected by tests).
    private let clock: () -> NIODeadline

    init(limits: Limits, clock: @escaping () -> NIODeadline = NIODeadline.now) {
        self.limits = limits
        self.clock = clock
        // Until the client acknowledges the SETTINGS, the protocol's defaults bind it (§6.5.3).
        decoder = HPACKRequestDecoder(maxHeaderListSize: HPACKRequestDecoder.defaultMaxHeaderListSize)
    }

    private var settings: [(UInt16, UInt32)] {
        [(3, UInt32(limits.maxConcurrentStreams)), (4, UInt32(limits.streamWindow)), (6, UInt32(limits.headerListBytes))]
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        output = context.channel.allocator.buffer(capacity: 1024)
        writable = context.channel.isWritable
        // The server's connection preface: its SETTINGS (§3.4).
        output.writeHTTP2Frame(type: 4) { out in
            for (identifier, value) in self.settings {
                out.writeInteger(identifier)
                out.writeInteger(value)
            }
        }
        flush(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(ChannelError.ioOnClosedChannel)
        self.context = nil
        receiver = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable {
            controlFramesWhileBlocked = 0
            if readHeldBack {
                readHeldBack = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// No reading while the client does not read what was sent: new requests would only make
    /// responses pile up in memory (as HTTP/1.1 connections hold their reads).
    func read(context: ChannelHandlerContext) {
        if writable {
            context.read()
        } else {
            readHeldBack = true
        }
    }

    private func failAll(_ error: Error) {
        let waiting = outputPromises
        outputPromises.removeAll()
        for promise in waiting { promise.fail(error) }
        waitingStreams.removeAll()
        for (id, stream) in streams {
            guard let queue = stream.queued else { continue }
            streams[id]!.queued = nil
            for waiting in queue { waiting.promise?.fail(error) }
        }
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard phase != .failed else { return }
        var bytes = unwrapInboundIn(data)
        if input == nil {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        // Bytes arriving while frames are handed on (a read the streams' work set off) wait
        // for the loop below.
        guard !reading else { return }
        reading = true
        defer { reading = false }
        if phase == .preface {
            do {
                guard try readPreface() else { return }
            } catch {
                return connectionError(.protocolError, NIOHTTP2Errors.badClientMagic())
            }
            phase = .firstSettings
        }
        while phase != .failed {
            do {
                guard let frame = try parser.next(from: &input!) else { break }
                try receive(frame)
            } catch let error as HTTP2WireError where error.stream != 0 {
                // A stream error in a frame's layout: the frame was consumed, the rest can be read.
                streamError(error.stream, error.code, NIOHTTP2Errors.unableToParseFrame())
            } catch let error as HTTP2WireError {
                connectionError(error.code, NIOHTTP2Errors.unableToParseFrame())
            } catch let failure as ConnectionFailure {
                connectionError(failure.code, failure.error)
            } catch {
                connectionError(.internalError, error)
            }
            deliverEvents()
        }
        if phase != .failed, let buffered = input {
            if buffered.readableBytes == 0 {
                input = nil
            } else if buffered.readerIndex > 16_384 {
                input!.discardReadBytes()
            }
        }
        // What answers the client's frames (SETTINGS and PING acknowledgements, DATA a window
        // let out) goes now.
        if output.readableBytes > 0 { flush(context: context) }
    }

    /// The client's first 24 bytes (§3.4); false until all have arrived.
    private func readPreface() throws(HTTP2WireError) -> Bool {
        let preface = HTTP2Pipeline.preface
        let available = min(input!.readableBytes, preface.count)
        let received = input!.readableBytesView.prefix(available)
        guard received.elementsEqual(preface.prefix(available)) else {
            throw HTTP2WireError(code: .protocolError, reason: "not the HTTP/2 preface")
        }
        guard available == preface.count else { return false }
        input!.moveReaderIndex(forwardBy: preface.count)
        return true
    }

    private struct ConnectionFailure: Error {
        var code: HTTP2ErrorCode
        var error: Error

        init(_ code: HTTP2ErrorCode, _ error: Error) {
            self.code = code
            self.error = error
        }
    }

    private func receive(_ frame: HTTP2WireFrame) throws {
        if let block = headerBlock {
            // Nothing may come between a header block's frames (§6.10).
            guard case .continuation(let stream, _, _) = frame, stream == block.stream else {
                throw ConnectionFailure(.protocolError, NIOHTTP2Errors.unableToParseFrame())
            }
        }
        if phase == .firstSettings {
            guard case .settings = frame else { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.missingPreface()) }
            phase = .open
            // Lets `HTTP2Connection` open the connection's receive window to its target at once.
            pendingEvents.append(.window(0, connectionRecvWindow))
        }
        switch frame {
        case .data(let stream, let bytes, let endStream, let flowControlled):
            try receiveData(stream, bytes, endStream: endStream, flowControlled: flowControlled)
        case .headers(let stream, let block, let endStream, let endHeaders, let dependsOn):
            let selfDependent = dependsOn == stream
            if endHeaders {
                try receiveHeaders(stream, block, endStream: endStream, selfDependent: selfDependent)
            } else {
                headerBlock = HeaderBlock(stream: stream, block: block, endStream: endStream, selfDependent: selfDependent)
                try checkHeaderBlockSize(block.readableBytes)
            }
        case .continuation(let stream, var part, let endHeaders):
            guard var block = headerBlock, block.stream == stream else {
                throw ConnectionFailure(.protocolError, NIOHTTP2Errors.unableToParseFrame())
            }
            block.continuations += 1
            if block.continuations > limits.maxContinuationFrames && !endHeaders {
                throw ConnectionFailure(.enhanceYourCalm, NIOHTTP2Errors.excessiveContinuationFrames())
            }
            try checkHeaderBlockSize(block.block.readableBytes + part.readableBytes)
            block.block.writeBuffer(&part)
            if endHeaders {
                headerBlock = nil
                try receiveHeaders(stream, block.block, endStream: block.endStream, selfDependent: block.selfDependent)
            } else {
                headerBlock = block
            }
        case .priority(let stream, let dependsOn):
            try countControlFrame()
            if dependsOn == stream {
                streamError(stream, .protocolError, NIOHTTP2Errors.priorityCycle(streamID: HTTP2StreamID(Int32(stream))))
            }
        case .rstStream(let stream, let code):
            try receiveReset(stream, code: code)
        case .settings(let settings):
            try countControlFrame()
            try apply(settings)
            output.writeHTTP2Frame(type: 4, flags: 0x1) { _ in }
            try countControlAnswer()
        case .settingsAck:
            receiveSettingsAck()
        case .ping(let opaque, let ack):
            try countControlFrame()
            if !ack {
                output.writeHTTP2Frame(type: 6, flags: 0x1) { $0.writeInteger(opaque) }
                try countControlAnswer()
            }
        case .goAway:
            // The client opens no more streams; those open finish, then the idle timeout ends it.
            break
        case .windowUpdate(let stream, let increment):
            try receiveWindowUpdate(stream, increment: Int(increment))
        case .pushPromise:
            throw ConnectionFailure(.protocolError, NIOHTTP2Errors.pushInViolationOfSetting())
        case .unknown:
            break
        }
    }

    private func checkHeaderBlockSize(_ bytes: Int) throws {
        // The encoded block is never larger than the list it decodes to by much; NIOHTTP2's bound.
        if bytes > decoder.maxHeaderListSize {
            throw ConnectionFailure(.protocolError, NIOHTTP2Errors.excessivelyLargeHeaderBlock())
        }
    }

    private func countControlFrame() throws {
        if controlFrames.exceeds(limits.maxControlFrames, within: limits.controlFrameInterval, now: clock()) {
            throw ConnectionFailure(.enhanceYourCalm, NIOHTTP2Errors.excessiveControlFrames())
        }
    }

    /// An answer the client makes the gateway write: bounded while the client does not read.
    private func countControlAnswer() throws {
        guard !writable else { return }
        controlFramesWhileBlocked += 1
        if controlFramesWhileBlocked > limits.maxBufferedControlFrames {
            throw ConnectionFailure(.enhanceYourCalm, NIOHTTP2Errors.excessiveOutboundFrameBuffering())
        }
    }

    private func streamID(_ id: UInt32) -> HTTP2StreamID {
        HTTP2StreamID(Int32(bitPattern: id))
    }

    /// A stream the client has not opened yet (§5.1: frames other than HEADERS and PRIORITY on
    /// one are a connection error).
    private func isIdle(_ stream: UInt32) -> Bool {
        stream > lastClientStream || stream % 2 == 0
    }

    private func receiveHeaders(_ id: UInt32, _ block: ByteBuffer, endStream: Bool, selfDependent: Bool) throws {
        do {
            // Decoded whatever happens to the stream: the HPACK table is the connection's.
            try decoder.decode(block, into: &headers)
        } catch {
            throw ConnectionFailure(.compressionError, error)
        }
        if var stream = streams[id] {
            guard stream.remoteOpen else {
                return streamError(id, .streamClosed, NIOHTTP2Errors.streamClosed(streamID: streamID(id), errorCode: .streamClosed))
            }
            // Trailers end the request (§8.1).
            guard endStream else {
                return streamError(id, .protocolError, NIOHTTP2Errors.trailersWithoutEndStream(streamID: streamID(id)))
            }
            stream.remoteOpen = false
            streams[id] = stream
            receiver?.receiveHeaders(streamID(id), headers, endStream: true)
            closeIfDone(id)
            return
        }
        guard id % 2 == 1 else { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.invalidStreamIDForPeer()) }
        // A stream that ended: frames the client sent before it learned so (after a reset by
        // the gateway, say) are ignored (§5.1).
        guard id > lastClientStream else { return }
        lastClientStream = id
        // After GOAWAY newer streams are ignored (§6.8): the client retries them elsewhere.
        guard !goAwaySent else { return }
        if selfDependent {
            return streamError(id, .protocolError, NIOHTTP2Errors.priorityCycle(streamID: streamID(id)))
        }
        if streams.count >= limits.maxConcurrentStreams {
            // Before its SETTINGS arrived the client could not know the limit (§5.1.2).
            guard localSettingsAcked else {
                return streamError(id, .refusedStream, NIOHTTP2Errors.streamClosed(streamID: streamID(id), errorCode: .refusedStream))
            }
            throw ConnectionFailure(.protocolError, NIOHTTP2Errors.maxStreamsViolation())
        }
        streams[id] = Stream(remoteOpen: !endStream, sendWindow: peerInitialWindow,
                             recvWindow: localSettingsAcked ? limits.streamWindow : Self.defaultWindow)
        receiver?.receiveHeaders(streamID(id), headers, endStream: endStream)
    }

    private func receiveData(_ id: UInt32, _ bytes: ByteBuffer, endStream: Bool, flowControlled: Int) throws {
        if isIdle(id) { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.noSuchStream(streamID: streamID(id))) }
        // The connection's window counts every DATA frame, whatever its stream's state (§6.9).
        guard flowControlled <= connectionRecvWindow else { throw ConnectionFailure(.flowControlError, NIOHTTP2Errors.flowControlViolation()) }
        connectionRecvWindow -= flowControlled
        if bytes.readableBytes == 0 && !endStream {
            emptyDataFrames += 1
            if emptyDataFrames > limits.maxEmptyDataFrames {
                throw ConnectionFailure(.enhanceYourCalm, NIOHTTP2Errors.excessiveEmptyDataFrames())
            }
        } else {
            emptyDataFrames = 0
        }
        if flowControlled > 0 {
            pendingEvents.append(.window(0, connectionRecvWindow))
        }
        // A stream that ended: ignored, as above (its bytes still counted for the connection).
        guard var stream = streams[id] else { return }
        guard stream.remoteOpen else {
            return streamError(id, .streamClosed, NIOHTTP2Errors.streamClosed(streamID: streamID(id), errorCode: .streamClosed))
        }
        guard flowControlled <= stream.recvWindow else {
            return streamError(id, .flowControlError, NIOHTTP2Errors.flowControlViolation())
        }
        stream.recvWindow -= flowControlled
        if endStream { stream.remoteOpen = false }
        streams[id] = stream
        receiver?.receiveData(streamID(id), bytes, endStream: endStream)
        if flowControlled > 0, let stream = streams[id] {
            pendingEvents.append(.window(id, max(stream.recvWindow, 0)))
        }
        if endStream { closeIfDone(id) }
    }

    private func receiveReset(_ id: UInt32, code: UInt32) throws {
        if isIdle(id) { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.noSuchStream(streamID: streamID(id))) }
        // Rapid reset (CVE-2023-44487): each reset costs the server a started request.
        if resets.exceeds(limits.maxResets, within: limits.resetInterval, now: clock()) {
            throw ConnectionFailure(.enhanceYourCalm, NIOHTTP2Errors.excessiveRSTFrames())
        }
        guard streams[id] != nil else { return }
        let errorCode = HTTP2ErrorCode(networkCode: Int(code))
        receiver?.receiveReset(streamID(id), errorCode)
        close(id, reason: errorCode, error: NIOHTTP2Errors.streamClosed(streamID: streamID(id), errorCode: errorCode))
    }

    private func receiveWindowUpdate(_ id: UInt32, increment: Int) throws {
        if id == 0 {
            guard increment > 0 else { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.invalidWindowIncrementSize()) }
            connectionSendWindow += increment
            guard connectionSendWindow <= Self.maxWindow else { throw ConnectionFailure(.flowControlError, NIOHTTP2Errors.flowControlViolation()) }
            return sendQueued()
        }
        if isIdle(id) { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.noSuchStream(streamID: streamID(id))) }
        guard var stream = streams[id] else { return }
        guard increment > 0 else {
            return streamError(id, .protocolError, NIOHTTP2Errors.invalidWindowIncrementSize())
        }
        stream.sendWindow += increment
        guard stream.sendWindow <= Self.maxWindow else {
            return streamError(id, .flowControlError, NIOHTTP2Errors.flowControlViolation())
        }
        streams[id] = stream
        sendQueued()
    }

    private func apply(_ settings: [HTTP2WireFrame.Setting]) throws {
        for setting in settings {
            switch setting.identifier {
            case 1:  // HEADER_TABLE_SIZE: the most the gateway's encoder may use (it uses none)
                tableSizeUpdateDue = true
            case 2:  // ENABLE_PUSH
                guard setting.value <= 1 else { throw ConnectionFailure(.protocolError, NIOHTTP2Errors.invalidSetting(setting: .init(parameter: .enablePush, value: Int(setting.value)))) }
            case 4:  // INITIAL_WINDOW_SIZE: changes every stream's send window by the difference (§6.9.2)
                guard Int(setting.value) <= Self.maxWindow else { throw ConnectionFailure(.flowControlError, NIOHTTP2Errors.flowControlViolation()) }
                let delta = Int(setting.value) - peerInitialWindow
                peerInitialWindow = Int(setting.value)
                for id in Array(streams.keys) {
                    streams[id]!.sendWindow += delta
                    guard streams[id]!.sendWindow <= Self.maxWindow else { throw ConnectionFailure(.flowControlError, NIOHTTP2Errors.flowControlViolation()) }
                }
                if delta > 0 { sendQueued() }
            case 5:  // MAX_FRAME_SIZE
                guard (16_384...16_777_215).contains(setting.value) else {
                    throw ConnectionFailure(.protocolError, NIOHTTP2Errors.invalidSetting(setting: .init(parameter: .maxFrameSize, value: Int(setting.value))))
                }
                peerMaxFrameSize = Int(setting.value)
            default:
                // MAX_CONCURRENT_STREAMS (the gateway opens none), MAX_HEADER_LIST_SIZE (advisory), unknown ones.
                break
            }
        }
    }

    /// The client now holds to the gateway's SETTINGS: its header list bound and stream window.
    private func receiveSettingsAck() {
        guard !localSettingsAcked else { return }
        localSettingsAcked = true
        decoder.maxHeaderListSize = limits.headerListBytes
        let delta = limits.streamWindow - Self.defaultWindow
        for id in Array(streams.keys) { streams[id]!.recvWindow += delta }
    }

    // MARK: Writing

    /// A control frame from a stream or the connection, written on the next flush: RST_STREAM,
    /// WINDOW_UPDATE, GOAWAY. (Heads and DATA go through `sendHead` and `sendData`.)
    func send(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>?) {
        let id = UInt32(Int32(frame.streamID))
        guard phase != .failed, context != nil else {
            promise?.fail(NIOHTTP2Errors.ioOnClosedConnection())
            return
        }
        switch frame.payload {
        case .rstStream(let code):
            guard streams[id] != nil else {
                promise?.succeed()
                return
            }
            output.writeHTTP2Frame(type: 3, stream: id) { $0.writeInteger(UInt32(code.networkCode)) }
            outputPromises.appendIfPresent(promise)
            close(id, reason: code, error: NIOHTTP2Errors.streamClosed(streamID: frame.streamID, errorCode: code))
        case .windowUpdate(let increment):
            output.writeHTTP2Frame(type: 8, stream: id) { $0.writeInteger(UInt32(increment)) }
            outputPromises.appendIfPresent(promise)
            if id == 0 {
                connectionRecvWindow = min(connectionRecvWindow + increment, Self.maxWindow)
                pendingEvents.append(.window(0, connectionRecvWindow))
            } else if var stream = streams[id] {
                stream.recvWindow = min(stream.recvWindow + increment, Self.maxWindow)
                streams[id] = stream
                pendingEvents.append(.window(id, max(stream.recvWindow, 0)))
            }
        case .goAway(let lastStream, let code, _):
            goAwaySent = true
            output.writeHTTP2Frame(type: 7) {
                $0.writeInteger(UInt32(Int32(lastStream)))
                $0.writeInteger(UInt32(code.networkCode))
            }
            outputPromises.appendIfPresent(promise)
        default:
            // Heads and DATA have their own calls; the gateway sends no push and no PING of its own.
            promise?.fail(NIOHTTP2Errors.unsupported(info: "frame type"))
        }
        deliverEvents()
    }

    /// A stream's response head, encoded (`HPACKResponseEncoder`) into HEADERS and CONTINUATION
    /// frames.
    func sendHead(_ streamID: HTTP2StreamID, _ head: ByteBuffer, endStream: Bool, promise: EventLoopPromise<Void>?) {
        let id = UInt32(Int32(streamID))
        guard phase != .failed, let stream = streams[id], stream.localOpen else { return failClosed(promise, id) }
        guard writeHeaders(id, endStream: endStream, { HPACKResponseEncoder.encode(head, into: &$0) }) else {
            // Not a head (a bug: the composer writes only status lines it can read): the stream
            // is reset rather than sent something else.
            output.writeHTTP2Frame(type: 3, stream: id) { $0.writeInteger(UInt32(HTTP2ErrorCode.internalError.networkCode)) }
            let error = NIOHTTP2Errors.streamClosed(streamID: streamID, errorCode: .internalError)
            promise?.fail(error)
            close(id, reason: .internalError, error: error)
            return deliverEvents()
        }
        outputPromises.appendIfPresent(promise)
        if endStream { localEnded(id) }
        deliverEvents()
    }

    /// A stream's DATA: what the client's windows let out now, the rest when they open.
    func sendData(_ streamID: HTTP2StreamID, _ bytes: ByteBuffer, endStream: Bool, promise: EventLoopPromise<Void>?) {
        let id = UInt32(Int32(streamID))
        guard phase != .failed, var stream = streams[id], stream.localOpen else { return failClosed(promise, id) }
        var bytes = bytes
        if endStream { stream.localOpen = false }
        if stream.queued == nil, writeData(id, &stream, &bytes, endStream: endStream) {
            streams[id] = stream
            outputPromises.appendIfPresent(promise)
            if endStream { closeIfDone(id) }
        } else {
            // The rest waits for the client's window, after what waits already.
            if stream.queued == nil {
                stream.queued = CircularBuffer()
                waitingStreams.append(id)
            }
            stream.queued!.append(QueuedData(bytes: bytes, endStream: endStream, promise: promise))
            streams[id] = stream
        }
        deliverEvents()
    }

    /// Sends what was written.
    func flush() {
        guard let context else { return }
        flush(context: context)
    }

    func flush(context: ChannelHandlerContext) {
        guard output.readableBytes > 0 else {
            context.flush()
            return deliverEvents()
        }
        let promise: EventLoopPromise<Void>?
        switch outputPromises.count {
        case 0:
            promise = nil
        case 1:
            promise = outputPromises[0]
        default:
            let combined = context.eventLoop.makePromise(of: Void.self)
            let waiting = outputPromises
            combined.futureResult.whenComplete { result in
                for each in waiting { each.completeWith(result) }
            }
            promise = combined
        }
        outputPromises.removeAll(keepingCapacity: true)
        // The written buffer leaves `output` before the flush: completing its promises makes the
        // streams write (and flush) more, which goes into the other buffer.
        var written = output
        output = spare ?? context.channel.allocator.buffer(capacity: 1024)
        spare = nil
        context.write(wrapOutboundOut(written), promise: promise)
        context.flush()
        // TLS encrypts on flush and lets go of the buffer: it is reused without an allocation.
        written.clear()
        if spare == nil { spare = written }
        deliverEvents()
    }

    private func failClosed(_ promise: EventLoopPromise<Void>?, _ id: UInt32) {
        promise?.fail(phase == .failed ? NIOHTTP2Errors.ioOnClosedConnection() : NIOHTTP2Errors.noSuchStream(streamID: streamID(id)))
    }

    /// A header block as HEADERS, and CONTINUATION frames when it is larger than the client's
    /// frame size.
    /// False, with nothing written, when `encode` found no head to encode.
    private func writeHeaders(_ id: UInt32, endStream: Bool, _ encode: (inout ByteBuffer) -> Bool) -> Bool {
        let start = output.beginHTTP2Frame(type: 1, flags: 0x4 | (endStream ? 0x1 : 0), stream: id)
        if tableSizeUpdateDue {
            output.writeInteger(HPACKResponseEncoder.emptyTableUpdate)
        }
        guard encode(&output) else {
            output.moveWriterIndex(to: start)
            return false
        }
        tableSizeUpdateDue = false
        let length = output.writerIndex - start - HTTP2FrameParser.headerLength
        guard length > peerMaxFrameSize else {
            output.endHTTP2Frame(at: start)
            return true
        }
        // Too large for one frame: cut the written block into frames of the client's size.
        var whole = output.getSlice(at: start + HTTP2FrameParser.headerLength, length: length)!
        output.moveWriterIndex(to: start)
        var first = true
        while whole.readableBytes > 0 {
            var part = whole.readSlice(length: min(whole.readableBytes, peerMaxFrameSize))!
            let last = whole.readableBytes == 0
            let flags: UInt8 = (last ? 0x4 : 0) | (first && endStream ? 0x1 : 0)
            output.writeHTTP2Frame(type: first ? 1 : 9, flags: flags, stream: id) { $0.writeBuffer(&part) }
            first = false
        }
        return true
    }

    /// DATA frames for as much of `bytes` as the windows and the frame size allow (what went is
    /// consumed); true when all of it (and the end, if it is the last) went.
    private func writeData(_ id: UInt32, _ stream: inout Stream, _ bytes: inout ByteBuffer, endStream: Bool) -> Bool {
        if bytes.readableBytes == 0 {
            // An empty frame needs no window: it only carries END_STREAM.
            if endStream { output.writeHTTP2Frame(type: 0, flags: 0x1, stream: id) { _ in } }
            return true
        }
        while bytes.readableBytes > 0 {
            let size = min(bytes.readableBytes, peerMaxFrameSize, stream.sendWindow, connectionSendWindow)
            guard size > 0 else { return false }
            var part = bytes.readSlice(length: size)!
            let last = bytes.readableBytes == 0
            output.writeHTTP2Frame(type: 0, flags: last && endStream ? 0x1 : 0, stream: id) { $0.writeBuffer(&part) }
            stream.sendWindow -= size
            connectionSendWindow -= size
        }
        return true
    }

    /// DATA that waited for a window, stream by stream in the order they waited.
    private func sendQueued() {
        guard !waitingStreams.isEmpty, connectionSendWindow > 0 else { return }
        var stillWaiting: [UInt32] = []
        for id in waitingStreams {
            guard var stream = streams[id], var queue = stream.queued else { continue }
            while var first = queue.first {
                let done = writeData(id, &stream, &first.bytes, endStream: first.endStream)
                if !done {
                    queue[queue.startIndex] = first
                    break
                }
                queue.removeFirst()
                outputPromises.appendIfPresent(first.promise)
            }
            stream.queued = queue.isEmpty ? nil : queue
            streams[id] = stream
            if stream.queued != nil {
                stillWaiting.append(id)
            } else if !stream.localOpen {
                closeIfDone(id)
            }
        }
        waitingStreams = stillWaiting
    }

    // MARK: Stream ends

    private func localEnded(_ id: UInt32) {
        streams[id]?.localOpen = false
        closeIfDone(id)
    }

    /// Both sides sent END_STREAM (and nothing waits to be sent): the stream is closed.
    private func closeIfDone(_ id: UInt32) {
        guard let stream = streams[id], !stream.remoteOpen, !stream.localOpen, stream.queued == nil else { return }
        close(id, reason: nil, error: nil)
    }

    private func close(_ id: UInt32, reason: HTTP2ErrorCode?, error: Error?) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        pendingEvents.append(.closed(id))
        if let queue = stream.queued {
            waitingStreams.removeAll { $0 == id }
            let failure = error ?? NIOHTTP2Errors.streamClosed(streamID: streamID(id), errorCode: .cancel)
            for waiting in queue { waiting.promise?.fail(failure) }
        }
    }

    private func deliverEvents() {
        // Delivered in place (a copy of the array would allocate on every call); an event
        // that causes more, or a delivery started meanwhile, is taken by this loop.
        guard !pendingEvents.isEmpty, !delivering, let receiver else { return }
        delivering = true
        defer { delivering = false }
        var index = 0
        while index < pendingEvents.count {
            let event = pendingEvents[index]
            index += 1
            switch event {
            case .closed(let id): receiver.streamClosed(streamID(id))
            case .window(let id, let size): receiver.inboundWindowChanged(streamID(id), to: size)
            }
        }
        pendingEvents.removeAll(keepingCapacity: true)
    }

    // MARK: Errors

    /// RST_STREAM for one stream; the connection goes on, unless the client causes too many.
    private func streamError(_ id: UInt32, _ code: HTTP2ErrorCode, _ error: Error) {
        if streamErrors.exceeds(limits.maxStreamErrors, within: limits.resetInterval, now: clock()) {
            return connectionError(.enhanceYourCalm, NIOHTTP2Errors.excessiveStreamErrors())
        }
        output.writeHTTP2Frame(type: 3, stream: id) { $0.writeInteger(UInt32(code.networkCode)) }
        close(id, reason: code, error: error)
        receiver?.streamError(NIOHTTP2Errors.streamError(streamID: streamID(id), baseError: error))
    }

    /// GOAWAY with the error, then `HTTP2Connection` learns of it and closes the connection.
    private func connectionError(_ code: HTTP2ErrorCode, _ error: Error) {
        guard phase != .failed else { return }
        phase = .failed
        input = nil
        if !(error is NIOHTTP2Errors.BadClientMagic) {
            output.writeHTTP2Frame(type: 7) {
                $0.writeInteger(self.lastClientStream)
                $0.writeInteger(UInt32(code.networkCode))
            }
        }
        flush()
        receiver?.connectionError(error)
    }
}

extension Array where Element == EventLoopPromise<Void> {
    fileprivate mutating func appendIfPresent(_ promise: EventLoopPromise<Void>?) {
        if let promise { append(promise) }
    }
}
