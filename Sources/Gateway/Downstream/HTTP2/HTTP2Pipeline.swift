import NIOCore
import NIOHTTP2

/// Turns a client connection into an HTTP/2 one (after ALPN chose `h2`, or after the h2c
/// preface): a `WriteCoalescer`, NIOHTTP2's handler with the listener's limits, then
/// `HTTP2Connection`, which gives each stream the client opens an `HTTP2Stream`.
enum HTTP2Pipeline {
    /// The 24 bytes an HTTP/2 client sends first (RFC 9113 §3.4).
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Adds the HTTP/2 handlers at the end of `pipeline`.
    static func install(on pipeline: ChannelPipeline.SynchronousOperations, loop: LoopContext, listener: ListenerRuntime,
                        peer: ClientPeer) throws {
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
        // Request blocks are validated once, by `HTTP2RequestHead`; response blocks are the
        // gateway's own composition.
        connection.headerBlockValidation = .disabled
        connection.maximumSequentialContinuationFrames = config.maxContinuationFrames
        connection.controlFrameRateLimit.maximumCount = config.maxControlFrames
        connection.controlFrameRateLimit.windowLength = config.controlFrameInterval.timeAmount
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = config.streamWindow.bytes
        stream.streamResetFrameRateLimit.maximumCount = config.maxResets
        stream.streamResetFrameRateLimit.windowLength = config.resetInterval.timeAmount
        let idle = config.idleTimeout?.timeAmount ?? runtime.timeouts.keepalive
        try pipeline.addHandler(WriteCoalescer())
        // No stream multiplexer: frames reach `HTTP2Connection`, which drives the streams.
        try pipeline.addHandler(NIOHTTP2Handler(mode: .server, connectionConfiguration: connection, streamConfiguration: stream))
        try pipeline.addHandler(HTTP2Connection(loop: loop, listener: listener, peer: peer, idleTimeout: idle))
    }
}
