import NIOCore

/// How a client connection becomes an HTTP/2 one: ALPN chose `h2` on a TLS listener, or a
/// cleartext `h2c` listener received the HTTP/2 preface (prior knowledge). Either way this
/// handler leaves the pipeline to `HTTP2ServerCodec` and `HTTP2Connection`.
extension HTTP1Connection {
    /// Called while the first bytes of an `h2c` listener's connection arrive. Returns whether
    /// they were taken (the preface, whole or in part); anything else is HTTP/1.1.
    func sniffHTTP2Preface(context: ChannelHandlerContext) -> Bool {
        let received = parser.bufferedView
        let preface = HTTP2Pipeline.preface
        let compared = min(received.count, preface.count)
        guard received.prefix(compared).elementsEqual(preface.prefix(compared)) else {
            sniffingPreface = false
            return false
        }
        guard received.count >= preface.count else { return true }  // more to come
        sniffingPreface = false
        switchToHTTP2(context: context, carrying: parser.takeBufferedBytes())
        return true
    }

    /// Installs the HTTP/2 handlers behind this one, hands them what was already received, and
    /// leaves the pipeline. The connection is then the `HTTP2Connection`'s (deadlines, drain).
    func switchToHTTP2(context: ChannelHandlerContext, carrying received: ByteBuffer?) {
        loop.unregister(self)
        state = .closed
        deadline = .distantFuture
        deadlineKind = .none
        let operations = context.pipeline.syncOperations
        do {
            try HTTP2Pipeline.install(on: operations, loop: loop, listener: listener, peer: peer)
        } catch {
            runtime.logger.warning("cannot start HTTP/2 on a connection", metadata: ["client": "\(peer.text)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        if let received { context.fireChannelRead(NIOAny(received)) }
        // A read this handler held back (backpressure) is the codec's to have now.
        if pendingRead {
            pendingRead = false
            context.read()
        }
        operations.removeHandler(context: context, promise: nil)
    }
}
