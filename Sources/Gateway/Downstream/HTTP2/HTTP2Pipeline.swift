import NIOCore
import NIOHTTP2

/// Turns a client connection into an HTTP/2 one (after ALPN chose `h2`, or after the h2c
/// preface): a `FlushCoalescer`, NIOHTTP2's handler with the listener's limits, then
/// `HTTP2Connection`; each stream the client opens gets an `HTTP2StreamAdapter` and an
/// `HTTP1Connection` of its own.
enum HTTP2Pipeline {
    /// The 24 bytes an HTTP/2 client sends first (RFC 9113 §3.4).
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Adds the HTTP/2 handlers at the end of `pipeline`.
    static func install(on pipeline: ChannelPipeline.SynchronousOperations, loop: LoopContext, listener: ListenerRuntime,
                        tls: TLSSession?) throws {
        let config = listener.http2
        let runtime = loop.runtime
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: config.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: config.headerListBytes(runtime.config.limits)),
            HTTP2Setting(parameter: .initialWindowSize, value: config.streamWindow.bytes),
            // No server push: the gateway never pushes, and saying so spares clients the bookkeeping.
        ]
        connection.targetWindowSize = max(config.connectionWindow.bytes, 65535)
        connection.maximumSequentialContinuationFrames = config.maxContinuationFrames
        connection.controlFrameRateLimit.maximumCount = config.maxControlFrames
        connection.controlFrameRateLimit.windowLength = config.controlFrameInterval.timeAmount
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = config.streamWindow.bytes
        stream.streamResetFrameRateLimit.maximumCount = config.maxResets
        stream.streamResetFrameRateLimit.windowLength = config.resetInterval.timeAmount
        let streamListener = listener.forStreams
        let maxHeadBytes = runtime.config.limits.maxResponseHeadBytes
        let boundLoop = NIOLoopBound(loop, eventLoop: loop.eventLoop)
        let idle = config.idleTimeout?.timeAmount ?? runtime.timeouts.keepalive
        let handler = HTTP2Connection(loop: loop, listener: listener.name, idleTimeout: idle)
        let events = HTTP2StreamEvents(connection: NIOLoopBound(handler, eventLoop: loop.eventLoop))
        try pipeline.addHandler(FlushCoalescer())
        _ = try pipeline.configureHTTP2Pipeline(mode: .server, connectionConfiguration: connection, streamConfiguration: stream,
                                                streamDelegate: events) { channel in
            channel.eventLoop.makeCompletedFuture {
                let operations = channel.pipeline.syncOperations
                try operations.addHandler(HTTP2StreamAdapter(maxHeadBytes: maxHeadBytes, loop: boundLoop.value, listener: streamListener.name))
                try operations.addHandler(HTTP1Connection(loop: boundLoop.value, listener: streamListener, stream: HTTP2StreamOrigin(tls: tls)))
            }
        }
        try pipeline.addHandler(handler)
    }
}

/// What a stream's connection handler knows of the HTTP/2 connection it belongs to.
struct HTTP2StreamOrigin {
    var tls: TLSSession?
}
