import HTTPWire
import NIOCore
import NIOSSL
import NIOTLS

/// The client-side handler that uses an upstream connection while it is leased.
protocol UpstreamConnectionOwner: AnyObject {
    func upstreamHasData(_ connection: UpstreamConnection)
    func upstreamReadComplete(_ connection: UpstreamConnection)
    func upstreamClosed(_ connection: UpstreamConnection)
    func upstreamWritabilityChanged(_ connection: UpstreamConnection)
}

/// One keep-alive connection to an upstream server, and the handler of its channel. It parses
/// responses for whichever client connection leased it, on the same event loop, and holds back
/// socket reads while that client cannot take more bytes (the GlueHandler pattern).
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: UpstreamServer
    unowned let pool: UpstreamConnectionPool
    var parser: HTTP1Parser
    /// The client connection using this one; nil while idle in the pool.
    var owner: UpstreamConnectionOwner?
    /// When it went back to the pool; idle connections past `idleLimit` are closed.
    var idleSince: NIODeadline = .now()
    /// How long it may stay idle and still be reused: `idle_timeout`, or less when the upstream
    /// said when it closes idle connections (`Keep-Alive: timeout=N`), a margin before that.
    private(set) var idleLimit: TimeAmount
    private(set) var requestsServed = 0
    /// Reused for request heads: once NIO has written it, its storage is ours again.
    var headScratch = ByteBuffer()
    /// Set once the pool has counted this connection as gone.
    var closeAccounted = false

    private var context: ChannelHandlerContext?
    private var readingAllowed = true
    private var pendingRead = false
    /// Usable: connected and not closing. NIO completes a connect before it fires
    /// `channelActive`, so the pool marks a connection usable (`connected()`) when its connect
    /// succeeds; waiting for `channelActive` left a window in which `close()` did nothing and a
    /// released connection stayed open for ever.
    private(set) var isActive = false
    /// `close()` was asked for; the channel closes on its own time.
    private var closing = false
    /// For `https://` servers: why the TLS handshake failed (a certificate the pool does not
    /// trust, a name mismatch, no shared protocol...). Set only before the handshake completed,
    /// so the request never reached the server.
    private(set) var tlsFailure: String?
    private var handshakeCompleted = false

    init(server: UpstreamServer, pool: UpstreamConnectionPool, maxHeadBytes: Int) {
        self.server = server
        self.pool = pool
        self.parser = HTTP1Parser(kind: .response, maxHeadBytes: maxHeadBytes, maxHeaderCount: 256)
        self.idleLimit = server.settings.idleTimeout.timeAmount
    }

    /// Reads `Keep-Alive: timeout=N` from a response head: the connection retires
    /// max(0.5 s, N/5) before the upstream would close it.
    func noteKeepAlive(of response: HTTPHead) {
        guard let value = response.firstValue(.keepAlive) else { return }
        for parameter in value.split(separator: ",") {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingSpaces().lowercased() == "timeout",
                  let seconds = Int64(pair[1].trimmingSpaces()), seconds >= 0 else { continue }
            let advertised = TimeAmount.seconds(seconds)
            let margin = max(TimeAmount.milliseconds(500), TimeAmount.nanoseconds(advertised.nanoseconds / 5))
            idleLimit = min(server.settings.idleTimeout.timeAmount, advertised - margin)
        }
    }

    /// Whether it may still carry a request after being idle since `idleSince`.
    func reusable(now: NIODeadline) -> Bool {
        isActive && now - idleSince < idleLimit
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }
    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    // MARK: Used by the owner

    /// Prepares for the next request; `head` says whether its response has no body.
    func beginRequest(respondingToHead: Bool) {
        parser.respondingToHead = respondingToHead
        requestsServed += 1
    }

    private var needsFlush = false

    func write(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    func flush() {
        needsFlush = false
        context?.flush()
    }

    func flushIfNeeded() {
        if needsFlush { flush() }
    }

    func pauseReading() {
        readingAllowed = false
    }

    func resumeReading() {
        readingAllowed = true
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    /// The connect succeeded.
    func connected() {
        if !closing { isActive = true }
    }

    func close() {
        guard let context, !closing else { return }
        closing = true
        isActive = false
        context.close(promise: nil)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isActive = context.channel.isActive
    }

    /// The context holds this handler: dropping it here breaks the cycle that would leak both.
    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if !closing { isActive = true }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        parser.append(unwrapInboundIn(data))
        if let owner {
            owner.upstreamHasData(self)
        } else {
            // Bytes on an idle connection belong to no request: the connection is unusable.
            close()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed()
        context.fireChannelInactive()
    }

    /// A channel closed before it became active (within its connect's tick) gets no
    /// `channelInactive`, only this: its pool must still learn that the slot is free.
    func channelUnregistered(context: ChannelHandlerContext) {
        closed()
        context.fireChannelUnregistered()
    }

    private func closed() {
        isActive = false
        closing = true
        let owner = self.owner
        self.owner = nil
        pool.connectionClosed(self)
        owner?.upstreamClosed(self)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        owner?.upstreamWritabilityChanged(self)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            handshakeCompleted = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if server.tls != nil, !handshakeCompleted, tlsFailure == nil {
            tlsFailure = String(describing: error)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if readingAllowed {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
