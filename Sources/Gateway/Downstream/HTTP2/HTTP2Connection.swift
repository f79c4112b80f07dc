import NIOCore
import HTTPWire
import NIOHPACK
import NIOHTTP2

/// An HTTP/2 client connection, right after `HTTP2ServerCodec` (which parses and writes frames,
/// keeps the protocol's state, HPACK and flow control, and enforces the protections). The codec
/// hands it each stream's frames, which go to the stream's `HTTP2Stream`, and the streams write
/// through it. It keeps what belongs to the connection as a whole: the receive window
/// (WINDOW_UPDATEs as streams take their DATA), GOAWAY on drain and when idle, and the count of
/// what the protections refused (rapid reset, CONTINUATION and control-frame floods, header
/// blocks over the limit), which end the connection with GOAWAY. As a channel handler it only
/// follows the connection's life (inactive, half-closed, writability, errors from below).
final class HTTP2Connection: ChannelInboundHandler, TimedConnection, HTTP2FrameReceiver {
    typealias InboundIn = Never

    let loop: LoopContext
    let listener: String
    /// The client, as every stream's exchange sees it (its TLS session, `proto=h2`).
    let peer: ClientPeer
    let headerListBytes: Int
    let maxBodyBytes: Int
    let requestBufferingBytes: Int
    private let streamWindow: Int
    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    let codec: HTTP2ServerCodec
    private(set) var streams: [HTTP2StreamID: HTTP2Stream] = [:]
    private var connectionWindow: HTTP2InboundWindow
    private var lastStreamID = HTTP2StreamID.rootStream
    private var goingAway = false
    /// The socket (or TLS) can take more: kept here, streams ask on every write.
    private(set) var isWritable = true
    /// When the connection is idle long enough to be closed (no stream open).
    private var idleDeadline = NIODeadline.distantFuture
    private var flushPending = false

    init(loop: LoopContext, listener: ListenerRuntime, peer: ClientPeer, idleTimeout: TimeAmount, codec: HTTP2ServerCodec) {
        self.loop = loop
        self.codec = codec
        self.listener = listener.name
        var peer = peer
        peer.http2 = true
        self.peer = peer
        let limits = loop.runtime.config.limits
        headerListBytes = listener.http2.headerListBytes(limits)
        maxBodyBytes = limits.maxBodySize.bytes
        requestBufferingBytes = limits.requestBuffering.bytes
        streamWindow = listener.http2.streamWindow.bytes
        connectionWindow = HTTP2InboundWindow(target: max(listener.http2.connectionWindow.bytes, 65535))
        self.idleTimeout = idleTimeout
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    /// A buffer for one head written as HTTP/1.1 text (a request's stays its head's `raw`).
    private func headBuffer() -> ByteBuffer {
        allocator.buffer(capacity: 512)
    }

    /// A response head's text lives only until the codec encoded it into HEADERS, a request
    /// head as long as its stream (and exchange): then each comes back here and serves the next
    /// one (two allocations per response head otherwise, four per request head: its text, the
    /// `HTTPHead` and its fields). Nothing still held elsewhere is written over: clearing a
    /// shared ByteBuffer gives it new storage, and a head something else holds (a cache refresh
    /// keeps its request's) is let go, not reused.
    private var spareResponseHead: ByteBuffer?
    private var spareRequestHead: HTTPHead?

    func responseHeadBuffer() -> ByteBuffer {
        guard var buffer = spareResponseHead else { return headBuffer() }
        spareResponseHead = nil
        buffer.clear()
        return buffer
    }

    func recycleResponseHead(_ buffer: ByteBuffer) {
        spareResponseHead = buffer
    }

    /// A buffer for a request head's text, and the head object to parse it into (nil: a new one).
    func requestHead() -> (text: ByteBuffer, head: HTTPHead?) {
        // Bound as a var straight from the result: a second binding of the bytes would share
        // them, and clearing shared bytes allocates new ones.
        guard case (let head, var text)? = HTTPHead.reclaim(&spareRequestHead) else {
            spareRequestHead = nil
            return (headBuffer(), nil)
        }
        text.clear()
        return (text, head)
    }

    func recycleRequestHead(_ head: HTTPHead) {
        spareRequestHead = head
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isWritable = context.channel.isWritable
        loop.register(self)
        idleDeadline = .now() + idleTimeout
        loop.runtime.metrics.countEvent("gateway_http2_connections_total", [("listener", listener)])
        if loop.draining { drain() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeStreams()
        self.context = nil
        loop.unregister(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeStreams()
        loop.unregister(self)
        context.fireChannelInactive()
    }

    /// The client shut its sending side (listeners allow half-closure, which HTTP/1.1 uses).
    /// HTTP/2 has no half-closed connection: a client that sends no more cannot acknowledge a
    /// SETTINGS or open a window, so the connection closes now, as nginx does; streams still
    /// open end as 499s. Waiting for them would keep a stalled stream's connection until the
    /// send timeout, and the idle timeout would keep the rest.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: Frames in (from the codec)

    func receiveHeaders(_ id: HTTP2StreamID, _ headers: HTTP2HeaderFields, endStream: Bool) {
        if let stream = streams[id] {
            stream.receiveTrailers()
        } else {
            openStream(id, headers, endStream: endStream)
        }
    }

    func receiveData(_ id: HTTP2StreamID, _ bytes: ByteBuffer, endStream: Bool) {
        streams[id]?.receiveData(bytes, endStream: endStream)
    }

    func receiveReset(_ id: HTTP2StreamID, _ code: HTTP2ErrorCode) {
        loop.runtime.metrics.countEvent("gateway_http2_streams_reset_total", [("listener", listener), ("code", Self.name(of: code))])
        streams[id]?.streamClosed()
    }

    func streamClosed(_ id: HTTP2StreamID) {
        streams[id]?.streamClosed()
    }

    func inboundWindowChanged(_ id: HTTP2StreamID, to size: Int) {
        if id == .rootStream {
            if let increment = connectionWindow.windowChanged(to: size) { windowUpdate(.rootStream, increment) }
        } else {
            streams[id]?.inboundWindowChanged(to: size)
        }
    }

    private func openStream(_ id: HTTP2StreamID, _ headers: HTTP2HeaderFields, endStream: Bool) {
        // After GOAWAY the codec ignores newer streams itself.
        if id > lastStreamID { lastStreamID = id }
        let stream = HTTP2Stream(id: id, connection: self, windowTarget: streamWindow)
        streams[id] = stream
        idleDeadline = .distantFuture
        stream.receiveHead(headers, endStream: endStream)
    }

    /// What this read gave the upstreams goes out together.
    func channelReadComplete(context: ChannelHandlerContext) {
        for stream in streams.values { stream.flushUpstream() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        for stream in streams.values { stream.writabilityChanged() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Frames out (for the streams)

    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>? = nil) {
        codec.send(frame, promise: promise)
    }

    /// Every stream flushes its own response, and each flush would be a TLS record and a
    /// write(2); with many streams finishing together that was most of the connection's CPU.
    /// So the flush waits for the end of the event loop
    /// iteration (`execute` runs after its I/O) and everything written in it goes out at once.
    /// A connection with one stream has nothing to wait for: it flushes now (the deferral
    /// costs a task per response, 3% of the CPU of one-stream connections).
    func flush() {
        guard !flushPending, let context else { return }
        if streams.count <= 1 { return codec.flush() }
        flushPending = true
        context.eventLoop.execute {
            self.flushPending = false
            self.codec.flush()
        }
    }

    func windowUpdate(_ id: HTTP2StreamID, _ increment: Int) {
        write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment)))
        flush()
    }

    func countStreamError() {
        loop.runtime.metrics.countEvent("gateway_http2_stream_errors_total", [("listener", listener), ("reason", "malformed_request")])
    }

    /// A stream ended (the codec closed it, or it was reset).
    func streamGone(_ stream: HTTP2Stream) {
        guard streams.removeValue(forKey: stream.id) != nil else { return }
        guard streams.isEmpty else { return }
        if goingAway {
            // Called while the stream's last frames are being written: the close waits for them.
            loop.eventLoop.execute { self.closeAfterWrites() }
        } else {
            idleDeadline = .now() + idleTimeout
        }
    }

    private func closeStreams() {
        for stream in Array(streams.values) { stream.streamClosed() }
    }

    /// A stream the codec reset (RST_STREAM sent): it ends, the connection goes on. Counted
    /// unless the frame only came late for a stream that had ended.
    func streamError(_ error: NIOHTTP2Errors.StreamError) {
        let base = error.baseError
        if !(base is NIOHTTP2Errors.StreamClosed || base is NIOHTTP2Errors.NoSuchStream) { countStreamError() }
        loop.runtime.logger.debug("HTTP/2 stream error", metadata: ["listener": "\(listener)", "error": "\(base)"])
        streams[error.streamID]?.streamClosed()
    }

    /// A connection error the codec answered with GOAWAY: counted, and the connection closes.
    func connectionError(_ error: Error) {
        let reason = Self.reason(of: error)
        loop.runtime.metrics.countEvent("gateway_http2_connection_errors_total", [("listener", listener), ("reason", reason)])
        loop.runtime.logger.debug("HTTP/2 connection error", metadata: [
            "listener": "\(listener)", "reason": "\(reason)", "error": "\(error)"])
        context?.close(promise: nil)
    }

    /// An error from below the codec (TLS, the socket): the connection ends.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !(error is ChannelError) {
            loop.runtime.metrics.countEvent("gateway_http2_connection_errors_total", [("listener", listener), ("reason", "io")])
            loop.runtime.logger.debug("HTTP/2 connection error", metadata: ["listener": "\(listener)", "error": "\(error)"])
        }
        context.close(promise: nil)
    }

    /// Shutdown: GOAWAY naming the last stream that will be served; the connection closes when
    /// those streams are done (or at `timeouts.drain`).
    func drain() {
        goAway(reason: "drain")
        if streams.isEmpty { closeAfterWrites() }
    }

    /// Shutdown, last step: streams still running are cut, then the connection.
    func forceClose() {
        for stream in Array(streams.values) { stream.forceClose() }
        context?.close(promise: nil)
    }

    /// The loop's sweeper checks the connection, not each stream (adding and removing every
    /// stream there cost two hash-table operations a request): the earliest of the streams'
    /// deadlines and the idle one.
    var deadline: NIODeadline {
        var earliest = idleDeadline
        for stream in streams.values where stream.deadline < earliest { earliest = stream.deadline }
        return earliest
    }

    func deadlineExpired(now: NIODeadline) {
        for stream in Array(streams.values) where stream.deadline <= now {
            stream.deadlineExpired(now: now)
        }
        guard idleDeadline <= now else { return }
        idleDeadline = .distantFuture
        guard streams.isEmpty else { return }
        goAway(reason: "idle")
        closeAfterWrites()
    }

    /// Closes once everything written so far is on the socket: a final GOAWAY (the same last
    /// stream, as RFC 9113 §6.8 allows) goes after it, and its completion closes the connection.
    private func closeAfterWrites() {
        guard let context, context.channel.isActive else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        codec.send(goAwayFrame, promise: promise)
        codec.flush()
        promise.futureResult.whenComplete { _ in context.close(promise: nil) }
    }

    private var goAwayFrame: HTTP2Frame {
        HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
    }

    private func goAway(reason: String) {
        // Only while the connection is in its pipeline.
        guard !goingAway, context != nil else { return }
        goingAway = true
        idleDeadline = .distantFuture
        loop.runtime.metrics.countEvent("gateway_http2_goaway_sent_total", [("listener", listener), ("reason", reason)])
        codec.send(goAwayFrame, promise: nil)
        codec.flush()
    }

    /// The metric label of a connection error (the codec names them with NIOHTTP2's types).
    static func reason(of error: Error) -> String {
        switch error {
        case is NIOHTTP2Errors.ExcessiveRSTFrames: "rapid_reset"
        case is NIOHTTP2Errors.ExcessiveContinuationFrames: "continuation_flood"
        case is NIOHTTP2Errors.ExcessiveControlFrames: "control_frame_flood"
        case is NIOHTTP2Errors.ExcessiveNumberOfGlitches, is NIOHTTP2Errors.ExcessiveStreamErrors: "stream_errors"
        case is NIOHTTP2Errors.ExcessiveEmptyDataFrames: "empty_data_flood"
        case is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering: "outbound_flood"
        case is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock: "header_list_too_large"
        case is NIOHTTP2Errors.MaxStreamsViolation: "too_many_streams"
        case is NIOHTTP2Errors.BadClientMagic, is NIOHTTP2Errors.MissingPreface: "bad_preface"
        case is NIOHTTP2Errors.FlowControlViolation: "flow_control"
        case is any NIOHPACKError: "compression"
        case is any NIOHTTP2Error: "protocol"
        default: "io"
        }
    }

    /// The label of an RST_STREAM's error code.
    static func name(of code: HTTP2ErrorCode) -> String {
        switch code {
        case .noError: "no_error"
        case .protocolError: "protocol_error"
        case .internalError: "internal_error"
        case .flowControlError: "flow_control_error"
        case .streamClosed: "stream_closed"
        case .frameSizeError: "frame_size_error"
        case .refusedStream: "refused_stream"
        case .cancel: "cancel"
        case .compressionError: "compression_error"
        case .enhanceYourCalm: "enhance_your_calm"
        case .inadequateSecurity: "inadequate_security"
        case .http11Required: "http_1_1_required"
        default: "other"
        }
    }
}
