import NIOCore
import NIOHPACK
import NIOHTTP2

/// An HTTP/2 client connection, after NIOHTTP2's handler in the connection's pipeline. Its
/// streams are `HTTP1Connection`s of their own (see `HTTP2StreamAdapter`); this handler is what
/// belongs to the connection as a whole: GOAWAY on drain and when idle, and the count of what
/// NIOHTTP2's protections refused (rapid reset, CONTINUATION and control-frame floods, header
/// blocks over the limit), which end the connection with GOAWAY.
final class HTTP2Connection: ChannelDuplexHandler, TimedConnection {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let loop: LoopContext
    let listener: String
    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID.rootStream
    private var goingAway = false
    private(set) var deadline = NIODeadline.distantFuture

    init(loop: LoopContext, listener: String, idleTimeout: TimeAmount) {
        self.loop = loop
        self.listener = listener
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop.register(self)
        deadline = .now() + idleTimeout
        loop.runtime.metrics.countEvent("gateway_http2_connections_total", [("listener", listener)])
        if loop.draining { drain() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        loop.unregister(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
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
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// NIOHTTP2 tells its stream delegate, not the pipeline, when streams open and close.
    func streamCreated(_ id: HTTP2StreamID) {
        openStreams += 1
        if id > lastStreamID { lastStreamID = id }
        deadline = .distantFuture
    }

    func streamClosed() {
        openStreams -= 1
        guard openStreams == 0 else { return }
        if goingAway {
            // Called while NIOHTTP2 hands the stream's last frames over: the close waits for them.
            loop.eventLoop.execute { self.closeAfterWrites() }
        } else {
            deadline = .now() + idleTimeout
        }
    }

    /// NIOHTTP2 reports both kinds of error here, after it has answered them: a stream error with
    /// RST_STREAM (a malformed request: that stream ends, the connection goes on), a connection
    /// error with GOAWAY (this handler then closes the connection). Both are counted.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A write that met the connection already closing is the close, not an error of its own.
        if error is NIOHTTP2Errors.IOOnClosedConnection || error is ChannelError { return context.close(promise: nil) }
        if Self.isStreamError(error) {
            loop.runtime.metrics.countEvent("gateway_http2_stream_errors_total", [("listener", listener), ("reason", "malformed_request")])
            loop.runtime.logger.debug("HTTP/2 stream error", metadata: ["listener": "\(listener)", "error": "\(error)"])
            return
        }
        let reason = Self.reason(of: error)
        loop.runtime.metrics.countEvent("gateway_http2_connection_errors_total", [("listener", listener), ("reason", reason)])
        loop.runtime.logger.debug("HTTP/2 connection error", metadata: [
            "listener": "\(listener)", "reason": "\(reason)", "error": "\(error)"])
        context.close(promise: nil)
    }

    /// The errors NIOHTTP2 raises for one stream only (RFC 9113 §8.1.1: a malformed request is
    /// a stream error): its header block or content-length, or a frame for a stream that ended.
    static func isStreamError(_ error: Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.MissingPseudoHeader, is NIOHTTP2Errors.DuplicatePseudoHeader,
             is NIOHTTP2Errors.PseudoHeaderAfterRegularHeader, is NIOHTTP2Errors.UnknownPseudoHeader,
             is NIOHTTP2Errors.UnsupportedPseudoHeader, is NIOHTTP2Errors.InvalidPseudoHeaders,
             is NIOHTTP2Errors.MissingHostHeader, is NIOHTTP2Errors.DuplicateHostHeader, is NIOHTTP2Errors.EmptyPathHeader,
             is NIOHTTP2Errors.InvalidHTTP2HeaderFieldName, is NIOHTTP2Errors.InvalidHTTP2HeaderFieldValue,
             is NIOHTTP2Errors.ForbiddenHeaderField, is NIOHTTP2Errors.InvalidPseudoHeaderValue,
             is NIOHTTP2Errors.TrailersWithoutEndStream, is NIOHTTP2Errors.StreamClosed, is NIOHTTP2Errors.NoSuchStream,
             is NIOHTTP2Errors.ContentLengthViolated, is NIOHTTP2Errors.ContentLengthHeadersMismatch,
             is NIOHTTP2Errors.ContentLengthHeaderNegative, is NIOHTTP2Errors.ContentLengthHeaderMalformedValue:
            true
        default:
            false
        }
    }

    /// Shutdown: GOAWAY naming the last stream that will be served; the connection closes when
    /// those streams are done (or at `timeouts.drain`).
    func drain() {
        goAway(reason: "drain")
        if openStreams == 0 { closeAfterWrites() }
    }

    func forceClose() {

        context?.close(promise: nil)
    }

    func deadlineExpired(now: NIODeadline) {
        deadline = .distantFuture
        guard openStreams == 0 else { return }
        goAway(reason: "idle")
        closeAfterWrites()
    }

    /// Closes once everything written so far is on the socket: a final GOAWAY (the same last
    /// stream, as RFC 9113 §6.8 allows) goes after it, and its completion closes the connection.
    private func closeAfterWrites() {
        guard let context, context.channel.isActive else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(goAwayFrame), promise: promise)
        promise.futureResult.whenComplete { _ in context.close(promise: nil) }
    }

    private var goAwayFrame: HTTP2Frame {
        HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
    }

    private func goAway(reason: String) {
        guard !goingAway, let context else { return }
        goingAway = true
        deadline = .distantFuture
        loop.runtime.metrics.countEvent("gateway_http2_goaway_sent_total", [("listener", listener), ("reason", reason)])
        context.writeAndFlush(wrapOutboundOut(goAwayFrame), promise: nil)
    }

    /// The metric label of an error NIOHTTP2 raised on the connection.
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

/// Hands NIOHTTP2's stream notifications to the connection's handler, on its event loop.
struct HTTP2StreamEvents: NIOHTTP2StreamDelegate {
    let connection: NIOLoopBound<HTTP2Connection>

    func streamCreated(_ id: HTTP2StreamID, channel: Channel) {
        connection.value.streamCreated(id)
    }

    func streamClosed(_ id: HTTP2StreamID, channel: Channel) {
        connection.value.streamClosed()
    }
}
