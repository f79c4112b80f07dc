import NIOCore
import NIOHTTP2

/// Turns a client connection into an HTTP/2 one (after ALPN chose `h2`, or after the h2c
/// preface): `HTTP2ServerCodec` (the framing layer) with the listener's limits, then
/// `HTTP2Connection`, which gives each stream the client opens an `HTTP2Stream`.
enum HTTP2Pipeline {
    /// The 24 bytes an HTTP/2 client sends first (RFC 9113 §3.4).
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Adds the HTTP/2 handlers at the end of `pipeline`.
    static func install(on pipeline: ChannelPipeline.SynchronousOperations, loop: LoopContext, listener: ListenerRuntime,
                        peer: ClientPeer) throws {
        let config = listener.http2
        let runtime = loop.runtime
        let limits = HTTP2ServerCodec.Limits(
            maxConcurrentStreams: config.maxConcurrentStreams,
            headerListBytes: config.headerListBytes(runtime.config.limits),
            streamWindow: config.streamWindow.bytes,
            maxContinuationFrames: config.maxContinuationFrames,
            maxResets: config.maxResets,
            resetInterval: config.resetInterval.timeAmount,
            maxControlFrames: config.maxControlFrames,
            controlFrameInterval: config.controlFrameInterval.timeAmount)
        let idle = config.idleTimeout?.timeAmount ?? runtime.timeouts.keepalive
        let codec = HTTP2ServerCodec(limits: limits)
        let connection = HTTP2Connection(loop: loop, listener: listener, peer: peer, idleTimeout: idle, codec: codec)
        codec.receiver = connection
        try pipeline.addHandler(codec)
        try pipeline.addHandler(connection)
    }
}
