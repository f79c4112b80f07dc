import NIOCore

/// Between NIOHTTP2 and TLS: the frames written until a flush go down as one buffer. NIOHTTP2
/// writes each frame's header and payload separately (a small response is three writes:
/// HEADERS, a DATA frame header, its payload), and NIOSSL makes every write a TLS record of its
/// own: three records to seal here and to open at the client where one would do, as nginx
/// (`ssl_buffer_size`) and HAProxy send them. Copying a few KiB costs less than a record.
/// Writes larger than a record go through as they are (after what was gathered).
final class WriteCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// A TLS record's plaintext at most (RFC 8446 §5.1).
    static let limit = 16 * 1024

    /// Held only between a write and its flush: an idle connection keeps no buffer.
    private var pending: ByteBuffer?
    private var promises: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .byteBuffer(var buffer) = unwrapOutboundIn(data), buffer.readableBytes <= Self.limit else {
            emitPending(context: context)
            return context.write(data, promise: promise)
        }
        if let gathered = pending?.readableBytes, gathered + buffer.readableBytes > Self.limit {
            emitPending(context: context)
        }
        if pending == nil {
            pending = context.channel.allocator.buffer(capacity: max(4096, buffer.readableBytes))
        }
        pending!.writeBuffer(&buffer)
        if let promise { promises.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {
        emitPending(context: context)
        context.flush()
    }

    /// What was gathered goes down first: the close then treats it as any write not yet flushed,
    /// and its promises end with it instead of never.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        emitPending(context: context)
        context.close(mode: mode, promise: promise)
    }

    private func emitPending(context: ChannelHandlerContext) {
        guard let gathered = pending else { return }
        pending = nil
        let promise: EventLoopPromise<Void>?
        switch promises.count {
        case 0:
            promise = nil
        case 1:
            promise = promises[0]
        default:
            let combined = context.eventLoop.makePromise(of: Void.self)
            let waiting = promises
            combined.futureResult.whenComplete { result in
                for each in waiting { each.completeWith(result) }
            }
            promise = combined
        }
        promises.removeAll(keepingCapacity: true)
        context.write(wrapOutboundOut(.byteBuffer(gathered)), promise: promise)
    }
}
