import HTTPWire
import NIOCore
import Router

/// One HTTP/1.1 client connection: bytes in, an `Exchange` per request, bytes out. It parses
/// requests, refuses the ones that cannot become exchanges, reads request bodies when the
/// exchange can take them, frames what the exchange returns for HTTP/1.x (chunking,
/// persistence, interim responses), keeps the connection's one deadline, and decides what the
/// connection does after each response (next request, close, lingering close). It reads from
/// the client only while the upstream can take more, and the exchange reads from the upstream
/// only while the client can: backpressure both ways. Requests are served one at a time, so
/// pipelined requests are answered in order; their bytes wait in the parser, which is bounded,
/// and past that bound the socket is not read.
final class HTTP1Connection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum ConnectionState {
        case open
        case lingering
        case closed
    }

    let loop: LoopContext
    /// The configuration of this connection's latest request (a reload changes it between two
    /// requests of a keep-alive connection; each exchange keeps the one it started with). Kept
    /// here rather than read through the loop: the data path reads it several times a request.
    private(set) var runtime: GatewayRuntime
    let listener: ListenerRuntime
    /// A failed TLS handshake was counted (so its close is not counted again).
    var handshakeFailureCounted = false
    var context: ChannelHandlerContext?
    var parser: HTTP1Parser
    var exchange: Exchange?
    var state = ConnectionState.open
    var pendingRead = false
    /// The client shut down its sending side: serve what it sent, then close.
    var inputClosed = false
    /// The current exchange waits for something before it can go on (see `Exchange.suspend`).
    var parked = false {
        didSet {
            if parked {
                deadline = .distantFuture
                deadlineKind = .none
            }
        }
    }
    /// Shutdown asked this connection to close after the current response.
    var closeAfterExchange = false
    var deadline = NIODeadline.distantFuture
    var deadlineKind = ClientDeadline.none
    /// When a lingering close ends, however much the client still sends.
    var lingerUntil = NIODeadline.distantFuture
    /// nginx's lingering_timeout and lingering_time.
    static let lingerTimeout = TimeAmount.seconds(5)
    static let lingerTime = TimeAmount.seconds(30)
    static let lingerOnShutdown = TimeAmount.seconds(1)
    var peer = ClientPeer()
    /// Response bytes held back to go out in one write with what follows (a small body behind
    /// its head): each NIO write costs more than copying a few KiB. The buffer is reused: once
    /// NIO has written it, its storage is ours again, so most responses allocate nothing.
    var clientPending = ByteBuffer()
    var hasClientPending = false
    /// Something was written to the client since the last flush.
    var clientNeedsFlush = false
    /// How the current response's body is framed, and whether the connection closes after it.
    var responseFraming = ClientFraming.asIs
    var closesAfterResponse = false
    /// A request whose body is being read whole before its exchange starts.
    var buffering: (head: HTTPHead, body: BufferedRequestBody)?
    /// `limits.request_buffering`.
    let requestBufferingBytes: Int
    /// `pumpRequest` is running; a nested call asks it to go round once more instead.
    private var pumping = false
    private var pumpAgain = false
    let maxBodyBytes: Int
    /// Unparsed bytes allowed to wait while a request is in flight (pipelining bound).
    let maxBufferedBytes: Int

    /// A cleartext `h2c` listener: the first bytes may be the HTTP/2 preface.
    var sniffingPreface: Bool

    init(loop: LoopContext, listener: ListenerRuntime = .cleartext) {
        self.loop = loop
        sniffingPreface = listener.http2.h2c
        self.listener = listener
        runtime = loop.runtime
        let limits = loop.runtime.config.limits
        parser = HTTP1Parser(kind: .request, maxHeadBytes: limits.maxHeaderSize.bytes, maxHeaderCount: limits.maxHeaders)
        maxBodyBytes = limits.maxBodySize.bytes
        requestBufferingBytes = limits.requestBuffering.bytes
        maxBufferedBytes = max(64 * 1024, limits.maxHeaderSize.bytes, requestBufferingBytes + 16 * 1024)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// The context holds this handler, so keeping it past removal would be a cycle that leaks
    /// both (and every buffer of the connection) for each closed connection.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if let remote = context.channel.remoteAddress, let address = IPAddress(socketAddress: remote) {
            peer = ClientPeer(address: address, text: address.description, trusted: runtime.trustedProxies.contains(address))
        }
        peer.redirectHTTPS = listener.redirectHTTPS
        loop.register(self)
        if listener.secure {
            arm(.handshake, listener.handshakeTimeout)
        } else {
            arm(.clientHeader, runtime.timeouts.clientHeader)
        }
        if loop.draining { drain(idleGrace: loop.drainIdleGrace) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .open:
            parser.append(unwrapInboundIn(data))
            if sniffingPreface, sniffHTTP2Preface(context: context) { return }
            pumpRequest()
        case .lingering:
            // nginx's lingering_timeout: a client still sending gets more time to read the
            // response, up to lingering_time in all.
            let now = NIODeadline.now()
            arm(.linger, min(Self.lingerTimeout, lingerUntil - now), now: now)
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        exchange?.flushUpstream()
        flushClient()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            switch state {
            case .lingering:
                closeNow()
            case .open:
                // Between requests: close once what was sent is served. In the middle of a
                // body: the body will not be complete, which the pump finds out now rather than
                // at the body timeout (with an upstream connection held meanwhile). A tunnel
                // ends with its client's input.
                if let exchange, exchange.machine.tunnelling {
                    exchange.endTunnel(.completed)
                } else if exchange == nil || exchange!.sendsRequestBody {
                    pumpRequest()
                }
            case .closed:
                break
            }
            return
        }
        if listener.secure, tlsHandshakeCompleted(event, context: context) { return }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if deadlineKind == .send { exchange?.armWait() }
            exchange?.downstreamWritable()
        } else if let exchange, exchange.downstreamBlocked() {
            arm(.send, runtime.timeouts.send)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasOpen = state != .closed
        state = .closed
        if listener.secure, peer.tls == nil { tlsHandshakeFailed(reason: "closed") }
        if wasOpen, let exchange {
            // The client left mid-exchange: nginx's 499, "client closed request".
            exchange.abandon(status: 499, errorKind: "client_closed")
        }
        loop.unregister(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if listener.secure, peer.tls == nil { tlsHandshakeFailed(reason: TLSHandshakeFailure.reason(of: error)) }
        // Socket errors (reset by peer...) end the connection; channelInactive cleans up.
        closeNow()
    }

    /// Reads are requested only when what they bring can be handled (backpressure).
    func read(context: ChannelHandlerContext) {
        if shouldReadFromClient {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private var shouldReadFromClient: Bool {
        switch state {
        case .closed: return false
        case .lingering: return true
        case .open: break
        }
        guard let exchange else { return true }
        if exchange.machine.tunnelling { return exchange.upstreamWritable }
        if exchange.sendsRequestBody, !exchange.upstreamWritable { return false }
        return parser.bufferedBytes < maxBufferedBytes
    }

    func resumeClientReads() {
        if pendingRead, shouldReadFromClient, let context {
            pendingRead = false
            context.read()
        }
    }

    // MARK: Requests

    /// Pulls what the parser has, as far as the current state allows. Re-entrant calls (an
    /// exchange that ends, or wants its body, while this runs) make it go round once more.
    func pumpRequest() {
        if pumping {
            pumpAgain = true
            return
        }
        pumping = true
        repeat {
            pumpAgain = false
            pumpOnce()
        } while pumpAgain && state == .open
        pumping = false
    }

    private func pumpOnce() {
        while state == .open {
            if buffering != nil {
                guard pumpBufferedBody() else { return }
            } else if let exchange {
                if exchange.machine.tunnelling { return pumpTunnelUp(exchange) }
                guard exchange.sendsRequestBody else { return }
                guard exchange.upstreamWritable else {
                    // The upstream holds us back, not the client: its timeout applies meanwhile.
                    if deadlineKind != .response { arm(.response, exchange.responseTimeout) }
                    exchange.flushUpstream()
                    return
                }
                guard pumpRequestBody(exchange) else { return }
            } else {
                guard pumpNextHead() else { return }
            }
        }
    }

    /// Returns whether to keep pumping.
    private func pumpNextHead() -> Bool {
        if loop.draining && parser.isIdle {
            // After a binary upgrade the last response may have promised keep-alive: the
            // client's next request may be on its way, and is answered (Connection: close)
            // within the grace rather than cut.
            if let grace = loop.drainIdleGrace {
                let now = NIODeadline.now()
                if deadline > now + grace { arm(.keepalive, grace, now: now) }
                return false
            }
            closeNow()
            return false
        }
        let event: HTTP1Parser.Event
        do {
            event = try parser.next()
        } catch {
            respondToBadRequest(error)
            return false
        }
        switch event {
        case .head(let head):
            startExchange(head)
            return true
        case .needMoreData:
            parser.releaseConsumedBytes()
            if inputClosed {
                closeNow()
            } else if parser.isIdle {
                if deadlineKind != .keepalive && deadlineKind != .clientHeader {
                    arm(.keepalive, runtime.timeouts.keepalive)
                }
            } else if deadlineKind != .clientHeader {
                // From the first byte of a head; not re-armed per read, or a client sending one
                // byte at a time (slowloris) could hold the connection forever.
                arm(.clientHeader, runtime.timeouts.clientHeader)
            }
            resumeClientReads()
            return false
        case .body, .end:
            // The parser yields these only inside a message, which an exchange owns.
            closeNow()
            return false
        }
    }

    /// A request head: refused here if HTTP/1.1 itself rules it out, else an exchange.
    private func startExchange(_ head: HTTPHead) {
        if let refusal = RequestAdmission.refusal(of: head, maxBodyBytes: maxBodyBytes) { return refuse(refusal, head: head) }
        var hasBody = false
        switch head.framing {
        case .none:
            _ = try? parser.next()  // the message's `.end`
        case .length(let length):
            hasBody = length > 0
            if !hasBody { _ = try? parser.next() }
        case .chunked:
            hasBody = true
        case .untilClose:
            break
        }
        if RequestAdmission.buffersBody(head, hasBody: hasBody, requestBufferingBytes: requestBufferingBytes) {
            buffering = (head, BufferedRequestBody())
            arm(.clientBody, runtime.timeouts.clientBody)
            return
        }
        start(head, hasBody: hasBody, bufferedBody: nil)
    }

    private func start(_ head: HTTPHead, hasBody: Bool, bufferedBody: BufferedRequestBody?) {
        let exchange = Exchange(head: head, hasBody: hasBody, downstream: self, loop: loop, peer: peer, bufferedBody: bufferedBody)
        self.exchange = exchange
        runtime = exchange.runtime
        exchange.start()
    }

    /// Reads a body to be buffered; the exchange starts once it is whole, or once it is larger
    /// than `request_buffering` (a chunked body), with what was read so far.
    private func pumpBufferedBody() -> Bool {
        guard let (head, body) = buffering else { return true }
        let event: HTTP1Parser.Event
        do {
            event = try parser.next()
        } catch {
            buffering = nil
            refuse(400, "\(error)", errorKind: "bad_request", head: head)
            return false
        }
        switch event {
        case .body(let part):
            var body = body
            body.bytes += part.readableBytes
            if body.bytes > maxBodyBytes {
                buffering = nil
                refuse(RequestAdmission.bodyTooLarge(maxBodyBytes), head: head)
                return false
            }
            body.parts.append(part)
            arm(.clientBody, runtime.timeouts.clientBody)
            if body.bytes > requestBufferingBytes {
                buffering = nil
                start(head, hasBody: true, bufferedBody: body)
            } else {
                buffering = (head, body)
            }
            return true
        case .end:
            var body = body
            body.complete = true
            buffering = nil
            start(head, hasBody: true, bufferedBody: body)
            resumeClientReads()
            return true
        case .needMoreData:
            if inputClosed {
                buffering = nil
                refuse(400, "request body incomplete", errorKind: "bad_request", head: head)
            }
            resumeClientReads()
            return false
        case .head:
            closeNow()
            return false
        }
    }

    /// A tunnel's client bytes go up as they come, while the upstream takes them (they are
    /// flushed at the end of the read).
    private func pumpTunnelUp(_ exchange: Exchange) {
        guard exchange.upstreamWritable else {
            exchange.flushUpstream()
            return
        }
        let bytes = parser.takeBufferedBytes()
        guard bytes.readableBytes > 0 else { return }
        exchange.tunnelToUpstream(bytes)
        exchange.armWait()
    }

    /// Forwards body parts while the upstream can take them; returns whether to keep pumping.
    private func pumpRequestBody(_ exchange: Exchange) -> Bool {
        let event: HTTP1Parser.Event
        do {
            event = try parser.next()
        } catch {
            exchange.flushUpstream()
            exchange.requestBodyFailed(status: 400, message: "\(error)", errorKind: "bad_request")
            return false
        }
        switch event {
        case .body(let part):
            if exchange.requestBodyBytes + part.readableBytes > maxBodyBytes {
                exchange.requestBodyFailed(RequestAdmission.bodyTooLarge(maxBodyBytes))
                return false
            }
            exchange.forwardRequestBody(part, allocator: context!.channel.allocator)
            arm(.clientBody, runtime.timeouts.clientBody)
            return true
        case .end:
            exchange.requestBodyEnded()
            resumeClientReads()
            return true
        case .needMoreData:
            exchange.flushUpstream()
            if inputClosed {
                // The client stopped sending in the middle of its body.
                exchange.requestBodyFailed(status: 400, message: "request body incomplete", errorKind: "bad_request")
            }
            return false
        case .head:
            closeNow()
            return false
        }
    }

    // MARK: Refusals (requests that never become exchanges)

    /// A request that could not be parsed: 400, 431, 501 or 505, and the connection closes
    /// (after a parse error nothing on it can be trusted to start a message).
    func respondToBadRequest(_ error: HTTPParseError) {
        refuse(error.requestStatus, error.description, errorKind: error.requestStatus == 431 ? "header_too_large" : "bad_request", head: nil)
    }

    func refuse(_ refusal: RequestAdmission.Refusal, head: HTTPHead?) {
        refuse(refusal.status, refusal.message, errorKind: refusal.errorKind, head: head)
    }

    /// Answers with an error and closes (lingering: the client may still be sending).
    func refuse(_ status: Int, _ message: String, errorKind: String, head: HTTPHead?) {
        let start = NIODeadline.now()
        let requestID = head.map { RequestID.of($0, generator: &loop.requestIDs) } ?? loop.requestIDs.make()
        let response = LocalResponse.error(status, message, requestID: requestID, errorKind: errorKind, forceClose: true)
        runtime.metrics.countError(errorKind)
        write(.local(response), head: head, exchange: nil, requestID: requestID, framing: .asIs, persistence: .close)
        ExchangeLog.recordRefusal(head: head, status: status, requestID: requestID, bytesOut: response.body.readableBytes,
                                  client: peer.text, tls: peer.tls?.version ?? "-", http2: peer.http2, start: start, loop: loop)
        closeAfterResponse(linger: true)
    }

    // MARK: Closing

    func closeNow() {
        guard state != .closed, let context else { return }
        flushClient()
        state = .closed
        context.close(promise: nil)
    }

    /// After a final response: stop sending, keep reading (and dropping) for a moment so the
    /// client reads the response instead of a reset (nginx's lingering close).
    func closeAfterResponse(linger: Bool) {
        guard state == .open, let context else { return }
        flushClient()
        guard linger, !inputClosed else {
            // The close waits for the response's last bytes: a close drops the writes NIO still
            // holds, and a slow reader's socket may not have taken them yet. A client that does
            // not read them is cut at the send timeout.
            state = .closed
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: written)
            written.futureResult.whenComplete { _ in context.close(mode: .all, promise: nil) }
            arm(.send, runtime.timeouts.send)
            return
        }
        state = .lingering
        context.close(mode: .output, promise: nil)
        let now = NIODeadline.now()
        lingerUntil = now + Self.lingerTime
        arm(.linger, Self.lingerTimeout, now: now)
        if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    /// Shutdown: close if idle, otherwise after the current response. A lingering close gets
    /// at most a second more: its response went out already, and a rolling restart should not
    /// wait on clients that neither read nor close.
    /// - Parameter idleGrace: an idle keep-alive connection is closed after this rather than at
    ///   once (its next request is still answered, with `Connection: close`).
    func drain(idleGrace: TimeAmount? = nil) {
        if state == .lingering {
            let now = NIODeadline.now()
            lingerUntil = min(lingerUntil, now + Self.lingerOnShutdown)
            if deadline > lingerUntil { arm(.linger, lingerUntil - now, now: now) }
            return
        }
        guard state == .open else { return }
        if exchange == nil {
            guard parser.isIdle else { return }
            if let idleGrace {
                arm(.keepalive, idleGrace)
            } else {
                closeNow()
            }
        } else {
            closeAfterExchange = true
        }
    }

    func forceClose() {
        exchange?.abandon(status: 503, errorKind: "shutdown")
        closeNow()
    }
}

extension IPAddress {
    init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4(let address):
            self.init(ipv4: UInt32(bigEndian: address.address.sin_addr.s_addr))
        case .v6(let address):
            let bytes = withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
            self.init(ipv6Bytes: bytes)
        default:
            return nil
        }
    }
}
