import NIOCore
import NIOHTTP2

/// Sits under an `HTTP1Connection` in an HTTP/2 stream channel and makes the stream look like an
/// HTTP/1.1 connection carrying one request: HEADERS and DATA frames in become request bytes,
/// response bytes out become HEADERS and DATA frames. Everything above (parsing limits, the
/// exchange, filters, cache, retries, deadlines, backpressure) is the HTTP/1.1 code, unchanged.
///
/// Backpressure needs nothing of its own: the stream channel is writable while the client's
/// flow-control window has room (so a slow reader holds back its upstream, not the connection's
/// other streams), and it hands DATA up only when the connection above asks to read, which is
/// when WINDOW_UPDATEs go back to the client.
final class HTTP2StreamAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let maxHeadBytes: Int
    private var requestCoding: HTTP2RequestHead.BodyCoding?
    private var requestEnded = false
    private var response: HTTP2ResponseFrames?
    /// The write that carried END_STREAM: a close waits for it, or it would be reset away.
    private var lastWrite: EventLoopFuture<Void>?

    private let loop: LoopContext
    private let listener: String

    init(maxHeadBytes: Int, loop: LoopContext, listener: String) {
        self.maxHeadBytes = maxHeadBytes
        self.loop = loop
        self.listener = listener
    }

    // MARK: Request: frames in, HTTP/1.1 bytes up

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            guard requestCoding == nil else {
                // Trailers: dropped (as for HTTP/1.1); they end the body.
                endRequest(context: context)
                return
            }
            var out = context.channel.allocator.buffer(capacity: 256)
            do {
                let written = try HTTP2RequestHead.write(headers.headers, endStream: headers.endStream, into: &out)
                requestCoding = written.coding
                response = HTTP2ResponseFrames(respondingToHead: written.isHead, maxHeadBytes: maxHeadBytes)
            } catch {
                // RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR.
                context.writeAndFlush(wrapOutboundOut(.rstStream(.protocolError)), promise: nil)
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(wrapInboundOut(out))
            if headers.endStream { requestEnded = true }
        case .data(let data):
            guard requestCoding != nil, !requestEnded, case .byteBuffer(let bytes) = data.data else { return }
            if requestCoding == .chunked, bytes.readableBytes > 0 {
                var size = context.channel.allocator.buffer(capacity: 12)
                size.writeString(String(bytes.readableBytes, radix: 16))
                size.writeStaticString("\r\n")
                context.fireChannelRead(wrapInboundOut(size))
                context.fireChannelRead(wrapInboundOut(bytes))
                context.fireChannelRead(wrapInboundOut(Self.crlf))
            } else if bytes.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(bytes))
            }
            if data.endStream { endRequest(context: context) }
        case .rstStream(let code):
            // The stream channel closes next: the connection above sees a client that left.
            loop.runtime.metrics.countEvent("gateway_http2_streams_reset_total",
                                            [("listener", listener), ("code", HTTP2Connection.name(of: code))])
        default:
            // WINDOW_UPDATE and PRIORITY are the multiplexer's.
            break
        }
    }

    private func endRequest(context: ChannelHandlerContext) {
        guard !requestEnded else { return }
        requestEnded = true
        if requestCoding == .chunked {
            context.fireChannelRead(wrapInboundOut(Self.lastChunk))
        }
    }

    private static let crlf = ByteBuffer(string: "\r\n")
    private static let lastChunk = ByteBuffer(string: "0\r\n\r\n")

    // MARK: Response: HTTP/1.1 bytes down, frames out

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard response != nil else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        do {
            try response!.translate(unwrapOutboundIn(data)) { emit($0, context: context) }
            promise?.succeed()
        } catch {
            promise?.fail(error)
            context.close(promise: nil)
        }
    }

    func flush(context: ChannelHandlerContext) {
        response?.flush { emit($0, context: context) }
        context.flush()
    }

    private func emit(_ payload: HTTP2Frame.FramePayload, context: ChannelHandlerContext) {
        let endsStream = switch payload {
        case .headers(let headers): headers.endStream
        case .data(let data): data.endStream
        default: false
        }
        guard endsStream else { return context.write(wrapOutboundOut(payload), promise: nil) }
        let promise = context.eventLoop.makePromise(of: Void.self)
        lastWrite = promise.futureResult
        context.write(wrapOutboundOut(payload), promise: promise)
    }

    /// The connection above closes after a response (or gives up on one). A complete response is
    /// let out first; the stream then ends by itself, or, if the client is still sending a body
    /// nobody will read, with RST_STREAM. An incomplete one is reset now.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        var complete = true
        if response != nil {
            complete = response!.close { emit($0, context: context) }
        }
        guard complete, let lastWrite else {
            context.close(mode: .all, promise: promise)
            return
        }
        context.flush()
        lastWrite.whenComplete { _ in
            if context.channel.isActive {
                context.close(mode: .all, promise: promise)
            } else {
                promise?.succeed()
            }
        }
    }
}
