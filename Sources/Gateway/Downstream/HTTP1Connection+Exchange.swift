import HTTPWire
import NIOCore

/// What an exchange asks of its HTTP/1.1 connection: heads framed and persisted for HTTP/1.x,
/// body parts (chunked when the client gets chunks), interim responses, the deadline of what
/// it waits for, and the request body when it can take it.
extension HTTP1Connection: ExchangeDownstream {
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func sendHead(_ head: ResponseHead, for exchange: Exchange) {
        guard state == .open, context != nil else { return }
        var framing = ClientFraming.asIs
        var forceClose = false
        switch head {
        case .upstream(let response):
            framing = ClientFraming.choose(upstream: response.framing, clientMinorVersion: exchange.head.minorVersion)
        case .local(let response):
            forceClose = response.forceClose
        case .cached:
            break
        }
        // A response that starts before the request body is read: the rest of that body would
        // be taken for the next request, so this connection ends with this response.
        let switching = exchange.machine.tunnelling
        closesAfterResponse = forceClose || framing == .untilClose || !exchange.head.keepAlive || inputClosed
            || closeAfterExchange || loop.draining || exchange.requestBodyPendingOnClient || switching
        responseFraming = framing
        let persistence: ResponseComposer.Persistence = switching ? .upgrade
            : closesAfterResponse ? .close : (exchange.head.minorVersion == 0 ? .keepAlive : .implicit)
        write(head, head: exchange.head, exchange: exchange, requestID: exchange.requestID, framing: framing, persistence: persistence)
    }

    /// Writes a composed head, and the body of cached and local answers (none for HEAD).
    func write(_ response: ResponseHead, head: HTTPHead?, exchange: Exchange?, requestID: RequestID, framing: ClientFraming,
               persistence: ResponseComposer.Persistence) {
        let composing = ResponseComposer.Context(
            exchange: exchange, requestID: requestID, persistence: persistence, date: loop.dateCache.current(),
            debugHeaders: runtime.config.debugHeaders)
        let headOnly = head?.method == .head
        switch response {
        case .upstream(let upstream):
            beginClientWrite(minimumCapacity: upstream.raw.readableBytes + 256 + min(upstream.contentLength ?? 0, Self.coalesceLimit))
            ResponseComposer.write(response, framing: framing, composing, into: &clientPending)
        case .cached(let answer):
            let body = headOnly ? nil : answer.body
            beginClientWrite(minimumCapacity: answer.entry.headerBlock.readableBytes + 256
                             + ((body?.readableBytes ?? 0) <= Self.coalesceLimit ? body?.readableBytes ?? 0 : 0))
            ResponseComposer.write(response, framing: framing, composing, into: &clientPending)
            if let body { writeToClient(body) }
        case .local(let local):
            beginClientWrite(minimumCapacity: 256 + local.body.readableBytes)
            ResponseComposer.write(response, framing: framing, composing, into: &clientPending)
            if !headOnly { writeToClient(local.body) }
            flushClient()
        }
    }

    /// 1xx responses go to HTTP/1.1 clients only (HTTP/1.0 knows none).
    func sendInterim(_ head: HTTPHead) {
        guard state == .open, let context, exchange?.head.minorVersion == 1 else { return }
        var out = context.channel.allocator.buffer(capacity: 32)
        out.writeStaticString("HTTP/1.1 ")
        out.writeString(head.string(head.part2))
        out.writeStaticString(" ")
        out.writeString(head.string(head.part3))
        out.writeStaticString("\r\n\r\n")
        writeToClient(out)
        flushClient()
    }

    func sendBody(_ part: ByteBuffer) {
        guard let context else { return }
        if responseFraming == .chunked {
            writeToClient(ChunkedEncoding.header(part.readableBytes, allocator: context.channel.allocator))
            writeToClient(part)
            writeToClient(ChunkedEncoding.crlf)
        } else {
            writeToClient(part)
        }
    }

    func flush() {
        flushClient()
    }

    func exchangeEnded(_ ended: Exchange, _ end: ExchangeEnd) {
        guard exchange === ended else { return }
        exchange = nil
        parked = false
        switch end {
        case .abandoned:
            return
        case .aborted:
            closeNow()
            return
        case .completed:
            break
        }
        if responseFraming == .chunked {
            writeToClient(ChunkedEncoding.lastChunk)
            responseFraming = .asIs
        }
        let bodyUnread = ended.requestBodyPendingOnClient
        if closesAfterResponse || bodyUnread {
            closeAfterResponse(linger: bodyUnread)
            return
        }
        flushClient()
        arm(.keepalive, runtime.timeouts.keepalive)
        pumpRequest()
        resumeClientReads()
    }

    func arm(_ wait: ExchangeStateMachine.Wait, timeout: TimeAmount, now: NIODeadline) {
        arm(ClientDeadline(wait), timeout, now: now)
    }

    func beginTunnel() -> ByteBuffer {
        parser.takeBufferedBytes()
    }

    func requestBodyWanted(now: NIODeadline, restartTimeout: Bool) {
        if restartTimeout { arm(.clientBody, runtime.timeouts.clientBody, now: now) }
        pumpRequest()
        resumeClientReads()
    }

    func exchangeSuspended() {
        parked = true
    }

    func exchangeResumed() {
        parked = false
    }

    func responseBlocked() {
        if deadlineKind != .send { arm(.send, runtime.timeouts.send) }
        flushClient()
    }

    // MARK: Writing to the client

    /// Bodies up to this size are copied behind their head instead of written separately.
    static let coalesceLimit = 8192

    func writeToClient(_ buffer: ByteBuffer) {
        if hasClientPending, buffer.readableBytes <= Self.coalesceLimit {
            clientPending.writeImmutableBuffer(buffer)
            return
        }
        emitClientPending()
        context?.write(wrapOutboundOut(buffer), promise: nil)
        clientNeedsFlush = true
    }

    /// Starts a write into `clientPending` that later small writes may join.
    func beginClientWrite(minimumCapacity: Int) {
        emitClientPending()
        clientPending.clear(minimumCapacity: minimumCapacity)
        hasClientPending = true
    }

    func emitClientPending() {
        guard hasClientPending else { return }
        hasClientPending = false
        context?.write(wrapOutboundOut(clientPending), promise: nil)
        clientNeedsFlush = true
    }

    func flushClient() {
        emitClientPending()
        if clientNeedsFlush {
            clientNeedsFlush = false
            context?.flush()
        }
    }
}

/// The connection's one deadline, checked by the loop's sweeper.
extension HTTP1Connection: TimedConnection {
    func arm(_ kind: ClientDeadline, _ timeout: TimeAmount, now: NIODeadline = .now()) {
        deadlineKind = kind
        deadline = now + timeout
    }

    /// A keep-alive connection idle for a second gives its response buffer back: 10,000 idle
    /// clients should cost little more than their sockets. Busy ones keep it (reusing it saves
    /// an allocation per response).
    func swept(now: NIODeadline) {
        guard deadlineKind == .keepalive, clientPending.capacity > 0, !hasClientPending,
              now >= deadline - runtime.timeouts.keepalive + .seconds(1) else { return }
        clientPending = ByteBuffer()
        parser.releaseConsumedBytes()
        parser.releaseSpareHead()
        loop.idleBuffersReleased()
    }

    func deadlineExpired(now: NIODeadline) {
        let kind = deadlineKind
        deadline = .distantFuture
        deadlineKind = .none
        if let wait = kind.exchangeWait, let exchange { return exchange.deadlineExpired(wait) }
        switch kind {
        case .none, .acquire, .response, .tunnel:
            return
        case .keepalive, .linger:
            closeNow()
        case .handshake:
            tlsHandshakeFailed(reason: "timeout")
            closeNow()
        case .clientHeader:
            if parser.isIdle {
                closeNow()
            } else {
                // Lingering: the client is still sending, and closing on unread bytes would reset
                // the connection and destroy the 408 before the client reads it.
                refuse(408, "timed out reading the request header", errorKind: "client_timeout", head: nil)
            }
        case .clientBody:
            if let (head, _) = buffering {
                buffering = nil
                refuse(408, "timed out reading the request body", errorKind: "client_timeout", head: head)
            }
        case .send:
            if let exchange { exchange.abandon(status: exchange.machine.status, errorKind: "client_send_timeout") }
            if state == .closed {
                // Closing after its response, which the client did not read in time.
                context?.close(promise: nil)
            } else {
                closeNow()
            }
        }
    }
}
