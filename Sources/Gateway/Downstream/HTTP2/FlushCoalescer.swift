import NIOCore

/// Between NIOHTTP2 and the socket (or TLS): many flushes in one event loop iteration become
/// one. Every stream flushes its own response, and each flush would otherwise be a TLS record
/// and a write(2) of its own; with 100 streams finishing together that is most of the
/// connection's CPU. The flush is put off to the end of the loop iteration (`execute` runs after
/// the iteration's I/O), so every response finished in it goes out in one write. A close flushes
/// first, so what was written before it (a GOAWAY) is not lost.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData

    private var flushPending = false

    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        context.eventLoop.execute {
            guard self.flushPending else { return }
            self.flushPending = false
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}
