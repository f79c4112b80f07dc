import HTTPWire
import NIOCore

/// The upstream half of an exchange: one lease per attempt, the request head and body on their
/// way up, the response on its way down, and what a failure turns into.
extension Exchange: UpstreamLeaseRequester, UpstreamConnectionOwner {
    // MARK: Leasing

    /// One attempt: filters prepare it, the server counts it in flight, a connection is leased.
    func sendToUpstream(now: NIODeadline) {
        guard let server else { return fail(.noServer) }
        chain.upstreamRequest(self)
        generation.balancer.inFlight[server.id] += 1
        attemptInFlight = true
        downstream.arm(.upstreamConnection, timeout: server.acquireTimeout, now: now)
        switch generation.pools[server.id].lease(for: self, now: now) {
        case .ready(let connection):
            // Leased at once: the same instant (a clock read less per request).
            attach(connection, now: now)
        case .pending:
            break
        }
    }

    func leaseSucceeded(_ connection: UpstreamConnection) {
        guard !ended, upstream == nil, let server, connection.pool === generation.pools[server.id] else {
            // Nobody needs it any more.
            connection.pool.release(connection, reusable: true)
            return
        }
        attach(connection, now: .now())
    }

    func leaseFailed(_ failure: UpstreamFailure) {
        guard !ended, upstream == nil else { return }
        fail(failure)
    }

    /// Gives the upstream connection back, unusable (a half-done exchange leaves it in an
    /// unknown state), or cancels a lease still pending.
    func releaseUpstream() {
        if let connection = upstream {
            upstream = nil
            connection.pool.release(connection, reusable: false)
        } else if attemptInFlight, let server {
            generation.pools[server.id].cancel(self)
        }
    }

    // MARK: Request

    /// An upstream connection is ours: send the head, then the body as the downstream reads it.
    private func attach(_ connection: UpstreamConnection, now: NIODeadline) {
        connection.owner = self
        connection.beginRequest(respondingToHead: head.method == .head)
        upstream = connection
        // An earlier attempt's connection may have closed (that is why this one is retried):
        // its end of input says nothing about this connection's response.
        upstreamEOF = false
        let bodyFollows = machine.upstreamAttached()
        let forwarding = ForwardingContext(
            peerAddress: peer.text, peerIsTrusted: peer.trusted, secure: peer.tls != nil, requestID: requestID, trace: trace,
            routingFields: runtime.routingFields[decision.region][decision.toWritePool ? 1 : 0],
            claimHeaders: filters.auth?.claimHeaders ?? [], reservedNames: runtime.auth?.reservedHeaders ?? [],
            dropConditionals: dropsConditionals, path: path.path, conditionals: revalidationConditionals, upgrade: upgrade)
        // Chunked bodies are re-chunked, buffered or not.
        let chunked = head.framing == .chunked
        connection.headScratch.clear()
        RequestHeadWriter.write(head, context: forwarding, chunkedBody: chunked, into: &connection.headScratch)
        connection.write(connection.headScratch)
        if bodyFollows, let bufferedBody {
            for part in bufferedBody.parts {
                writeRequestBody(part, to: connection, chunked: chunked, allocator: connection.allocator)
            }
            if bufferedBody.complete {
                if chunked { connection.write(ChunkedEncoding.lastChunk) }
                machine.requestBodyFinished()
                connection.flush()
                downstream.arm(.upstreamResponse, timeout: responseTimeout, now: now)
            } else {
                downstream.requestBodyWanted(now: now, restartTimeout: true)
            }
        } else if bodyFollows {
            downstream.requestBodyWanted(now: now, restartTimeout: true)
        } else {
            connection.flush()
            downstream.arm(.upstreamResponse, timeout: responseTimeout, now: now)
        }
        if connection.parser.bufferedBytes > 0, upstream === connection {
            pumpResponse()
        }
    }

    /// Whether the request body goes to an upstream now.
    var sendsRequestBody: Bool { machine.request == .sendingBody && upstream != nil }

    var upstreamWritable: Bool { upstream?.isWritable ?? false }

    func forwardRequestBody(_ part: ByteBuffer, allocator: ByteBufferAllocator) {
        guard let upstream else { return }
        requestBodyBytes += part.readableBytes
        writeRequestBody(part, to: upstream, chunked: head.framing == .chunked, allocator: allocator)
    }

    /// Chunked bodies are re-framed, so what reaches the upstream is framing of our making.
    private func writeRequestBody(_ part: ByteBuffer, to upstream: UpstreamConnection, chunked: Bool, allocator: ByteBufferAllocator) {
        if chunked {
            upstream.write(ChunkedEncoding.header(part.readableBytes, allocator: allocator))
            upstream.write(part)
            upstream.write(ChunkedEncoding.crlf)
        } else {
            upstream.write(part)
        }
    }

    func requestBodyEnded() {
        guard let upstream else { return }
        if head.framing == .chunked {
            upstream.write(ChunkedEncoding.lastChunk)
        }
        upstream.flush()
        machine.requestBodyFinished()
        if !machine.responseStarted { armWait() }
    }

    func flushUpstream() {
        upstream?.flushIfNeeded()
    }

    /// Arms the timeout of what the exchange waits for now (`ExchangeStateMachine.waiting`).
    func armWait(now: NIODeadline = .now()) {
        switch machine.waiting(upstreamWritable: upstreamWritable) {
        case .requestBody: downstream.arm(.requestBody, timeout: runtime.timeouts.clientBody, now: now)
        case .upstreamResponse, .upstreamConnection: downstream.arm(.upstreamResponse, timeout: responseTimeout, now: now)
        case .tunnel: downstream.arm(.tunnel, timeout: runtime.timeouts.tunnel, now: now)
        }
    }

    // MARK: Upstream events

    func upstreamHasData(_ connection: UpstreamConnection) {
        guard upstream === connection else { return }
        pumpResponse()
    }

    func upstreamReadComplete(_ connection: UpstreamConnection) {
        downstream.flush()
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard upstream === connection, connection.isWritable else { return }
        downstream.requestBodyWanted(now: .now(), restartTimeout: machine.request == .sendingBody && !machine.responseStarted)
    }

    func upstreamClosed(_ connection: UpstreamConnection) {
        guard upstream === connection else { return }
        if let reason = connection.tlsFailure {
            // nginx logs "SSL_do_handshake() failed ... while SSL handshaking to upstream".
            if let heldBack = loop.upstreamTLSWarnings.admit(connection.server.id, now: .now()) {
                runtime.logger.warning("upstream TLS handshake failed", metadata: [
                    "server": "\(connection.server.url)", "pool": "\(connection.server.poolName)", "reason": "\(reason)",
                    "not_logged_since_last": "\(heldBack)"])
            }
            return fail(.tls)
        }
        upstreamEOF = true
        pumpResponse()
    }

    // MARK: Downstream events

    /// The client can take more: the upstream may send more.
    func downstreamWritable() {
        upstream?.resumeReading()
        pumpResponse()
    }

    /// The client takes nothing now: the upstream is not read meanwhile. Returns whether an
    /// upstream was paused (the client's send timeout then runs).
    func downstreamBlocked() -> Bool {
        guard let upstream else { return false }
        upstream.pauseReading()
        return true
    }

    // MARK: Response

    /// Moves response events to the client while the client can take them.
    func pumpResponse() {
        if machine.tunnelling { return pumpTunnelDown() }
        while !ended, let connection = upstream, heldHead?.reason != .followUp {
            guard downstream.isWritable else {
                // Pause first: the flush may complete at once, and NIO then reports the client
                // writable again from inside it, which must find reading paused to resume it.
                connection.pauseReading()
                downstream.responseBlocked()
                return
            }
            let event: HTTP1Parser.Event
            do {
                event = try connection.parser.next()
            } catch {
                fail(machine.responseStarted ? .reset : .malformedResponse)
                return
            }
            switch event {
            case .head(let response):
                guard receiveHead(response, from: connection) else { return }
            case .body(let part):
                if heldHead != nil { releaseHeldHead() }
                chain.responseBody(self, part)
                responseBodyBytes += part.readableBytes
                downstream.sendBody(part)
            case .end:
                if heldHead != nil { releaseHeldHead() }
                complete()
                return
            case .needMoreData:
                if upstreamEOF {
                    finishAtUpstreamEOF(connection)
                } else {
                    armWait()
                }
                return
            }
        }
    }

    /// Returns false when the exchange stops here for now (its head held for a follow-up,
    /// replaced by a stale entry, or failed).
    private func receiveHead(_ response: HTTPHead, from connection: UpstreamConnection) -> Bool {
        switch machine.responseHead(status: response.status, contentLength: response.contentLength, keepAlive: response.keepAlive) {
        case .interim:
            downstream.sendInterim(response)
            return true
        case .switchProtocols:
            startTunnel(response, on: connection)
            return false
        case .fail(let failure):
            fail(failure)
            return false
        case .final(let mayBeReplaced, let holdUntilBody):
            connection.noteKeepAlive(of: response)
            if mayBeReplaced, let answer = chain.replacement(self, for: response) {
                if response.status == 304 {
                    // The entry is still good: the 304's connection carries more requests.
                    _ = try? connection.parser.next()
                    upstream = nil
                    connection.pool.release(connection, reusable: machine.responseEnded())
                    endAttempt(.success)
                    serve(answer)
                } else {
                    replace(with: answer, outcome: .failure)
                }
                return false
            }
            let holds = chain.responseHead(self, response)
            if !holds.isEmpty {
                hold(response, until: holds, connection)
                return false
            }
            if holdUntilBody {
                heldHead = HeldHead(head: response, reason: .firstBodyByte)
            } else {
                forwardHead(response)
            }
            return true
        }
    }

    /// The head waits (the upstream paused) until every filter's follow-up is done.
    private func hold(_ response: HTTPHead, until holds: [EventLoopFuture<Void>], _ connection: UpstreamConnection) {
        heldHead = HeldHead(head: response, reason: .followUp)
        connection.pauseReading()
        EventLoopFuture.andAllComplete(holds, on: loop.eventLoop).assumeIsolated().whenComplete { _ in
            guard !self.ended, self.upstream === connection, let held = self.heldHead, held.reason == .followUp else { return }
            self.heldHead = nil
            self.forwardHead(held.head)
            connection.resumeReading()
            self.pumpResponse()
            self.downstream.flush()
        }
    }

    private func releaseHeldHead() {
        guard let held = heldHead else { return }
        heldHead = nil
        forwardHead(held.head)
    }

    private func forwardHead(_ response: HTTPHead) {
        machine.responseHeadForwarded()
        status = response.status
        downstream.sendHead(.upstream(response), for: self)
    }

    /// The upstream closed: a close-delimited body ends here; anything else is cut short.
    private func finishAtUpstreamEOF(_ connection: UpstreamConnection) {
        switch try? connection.parser.finish() {
        case .end?:
            if heldHead != nil { releaseHeldHead() }
            complete()
        default:
            fail(.reset)
        }
    }

    private func complete() {
        let reusable = machine.responseEnded()
        let now = NIODeadline.now()
        if let connection = upstream {
            upstream = nil
            connection.pool.release(connection, reusable: reusable, now: now)
        }
        upstreamResponseComplete = true
        status = machine.status
        finish(.completed, outcome: status >= 500 ? .failure : .success, now: now)
    }

    // MARK: Failures

    /// The upstream side failed, or there was nothing to try. Before any response byte the
    /// request is retried where that is safe, or a stale entry answers, or an error does;
    /// after, the client is cut off, which is how HTTP/1.1 says "this response is incomplete".
    func fail(_ failure: UpstreamFailure) {
        guard !ended else { return }
        if machine.retryIsSafe(after: failure), retry(after: failure) { return }
        releaseUpstream()
        runtime.metrics.countError(failure.metricKind)
        switch machine.failed(failure) {
        case .answer(let status):
            if let stale = chain.replacement(self, for: nil) {
                return replace(with: stale, outcome: failure.outcome)
            }
            endAttempt(failure.outcome)
            respond(LocalResponse.error(status, failure.description, requestID: requestID, errorKind: nil,
                                        extraHeaders: failure.nothingToTry ? [("Retry-After", "1")] : []))
        case .abort:
            endAttempt(failure.outcome)
            status = machine.status
            finish(.aborted)
        }
    }

    /// A stale entry answers instead of a failed or 5xx upstream; the server's failure still
    /// counts against it.
    private func replace(with stale: CachedAnswer, outcome: ExchangeOutcome) {
        releaseUpstream()
        endAttempt(outcome)
        serve(stale)
    }

    /// Sends the request to another server when the state machine says it is safe, the router
    /// has one, and the retry budget allows it.
    private func retry(after failure: UpstreamFailure) -> Bool {
        guard let failed = server else { return false }
        let now = NIODeadline.now()
        var next = decision
        runtime.router.retry(&next, failed: failed.id, state: generation.routingState, balancer: &generation.balancer)
        // Nowhere else to go: the failure stands, and is answered and recorded as usual.
        guard let poolIndex = next.pool, let serverIndex = next.server else { return false }
        guard generation.retryBudget.tryRetry(now: Int64(now.uptimeNanoseconds)) else {
            runtime.metrics.countEvent("gateway_retries_total", [("result", "budget_exhausted")])
            return false
        }
        releaseUpstream()
        endAttempt(failure.outcome, now: now)
        runtime.metrics.countError(failure.metricKind)
        runtime.metrics.countEvent("gateway_retries_total", [("result", "retried"), ("reason", failure.metricKind)])
        decision = next
        target(pool: poolIndex, server: serverIndex)
        heldHead = nil
        machine.retrying()
        sendToUpstream(now: now)
        return true
    }
}
