import Cache
import HTTPWire
import NIOCore
import Router

/// The upstream half of an exchange: leasing, response streaming, failures.
extension DownstreamHandler: UpstreamLeaseRequester, UpstreamConnectionOwner {
    // MARK: Leasing

    func leaseSucceeded(_ connection: UpstreamConnection) {
        guard state == .open, exchange != nil, exchange!.upstream == nil else {
            // Nobody needs it any more.
            loop.connectionPool(for: connection.server).release(connection, reusable: true)
            return
        }
        attach(connection, now: .now())
    }

    func leaseFailed(_ failure: UpstreamFailure) {
        guard exchange != nil, exchange!.upstream == nil else { return }
        failExchange(failure)
    }

    // MARK: Response

    func upstreamHasData(_ connection: UpstreamConnection) {
        guard exchange?.upstream === connection else { return }
        pumpResponse()
    }

    func upstreamReadComplete(_ connection: UpstreamConnection) {
        flushClient()
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard exchange?.upstream === connection, connection.isWritable else { return }
        if exchange!.machine.request == .sendingBody, !exchange!.machine.responseStarted {
            arm(.clientBody, runtime.timeouts.clientBody)
        }
        pumpRequest()
        resumeClientReads()
    }

    func upstreamClosed(_ connection: UpstreamConnection) {
        guard exchange?.upstream === connection else { return }
        exchange!.upstreamEOF = true
        pumpResponse()
    }

    /// Moves response events to the client while the client can take them.
    func pumpResponse() {
        guard let context else { return }
        while state == .open, let exchange, let connection = exchange.upstream, exchange.heldHead?.reason != .followUp {
            guard context.channel.isWritable else {
                // Pause first: the flush may complete at once, and NIO then reports the client
                // writable again from inside it, which must find reading paused to resume it.
                connection.pauseReading()
                if deadlineKind != .send { arm(.send, runtime.timeouts.send) }
                flushClient()
                return
            }
            let event: HTTP1Parser.Event
            do {
                event = try connection.parser.next()
            } catch {
                failExchange(exchange.machine.responseStarted ? .reset : .malformedResponse)
                return
            }
            switch event {
            case .head(let head):
                guard forwardResponseHead(head, exchange: exchange, connection: connection, context: context) else { return }
            case .body(let part):
                if exchange.heldHead != nil { releaseHeldHead(exchange) }
                if let capture = exchange.capture, !capture.append(part) {
                    // Past max_body: the client still gets it all, the cache none of it.
                    capture.finish(succeeded: false, loop: loop)
                    exchange.capture = nil
                }
                exchange.responseBodyBytes += part.readableBytes
                if exchange.machine.clientFraming == .chunked {
                    writeToClient(ChunkedEncoding.header(part.readableBytes, allocator: context.channel.allocator))
                    writeToClient(part)
                    writeToClient(ChunkedEncoding.crlf)
                } else {
                    writeToClient(part)
                }
            case .end:
                if exchange.heldHead != nil { releaseHeldHead(exchange) }
                completeExchange()
                return
            case .needMoreData:
                if exchange.upstreamEOF {
                    finishAtUpstreamEOF(connection)
                } else {
                    armResponseTimeout()
                }
                return
            }
        }
    }

    /// The upstream closed: a close-delimited body ends here; anything else is cut short.
    private func finishAtUpstreamEOF(_ connection: UpstreamConnection) {
        do {
            switch try connection.parser.finish() {
            case .end:
                if let exchange, exchange.heldHead != nil { releaseHeldHead(exchange) }
                completeExchange()
            case .body, .head, .needMoreData:
                failExchange(.reset)
            }
        } catch {
            failExchange(.reset)
        }
    }

    private func completeExchange() {
        guard context != nil, exchange != nil else { return }
        let completion = exchange!.machine.responseEnded()
        let finished = exchange!
        exchange = nil
        if completion.writeLastChunk {
            writeToClient(ChunkedEncoding.lastChunk)
        }
        if let connection = finished.upstream {
            loop.connectionPool(for: connection.server).release(connection, reusable: completion.reuseUpstream)
        }
        finished.capture?.finish(succeeded: true, loop: loop)
        let now = NIODeadline.now()
        record(finished, status: finished.machine.status, now: now, outcome: finished.machine.status >= 500 ? .failure : .success)
        if completion.closeClient {
            closeAfterResponse(linger: finished.machine.requestBodyUnread)
            return
        }
        flushClient()
        arm(.keepalive, runtime.timeouts.keepalive, now: now)
        pumpRequest()
        resumeClientReads()
    }

    // MARK: Failures

    /// The upstream side failed. Before any response byte the client gets an error response;
    /// after, the connection is cut, which is how HTTP/1.1 says "this response is incomplete".
    func failExchange(_ failure: UpstreamFailure) {
        guard let failed = exchange else { return }
        if retry(failed, after: failure) { return }
        // stale_if_error: an entry answers instead of the error.
        if !failed.machine.responseStarted, replaceWithStale(failed) {
            runtime.metrics.countError(failure.metricKind)
            return
        }
        let action = failed.machine.upstreamFailed(failure)
        releaseUpstream(of: failed)
        exchange = nil
        runtime.metrics.countError(failure.metricKind)
        let outcome: Outcome = switch failure {
        case .queueTimeout, .noServer: .neutral
        case .connectRefused, .connectTimeout: .connectFailure
        default: .failure
        }
        switch action {
        case .respond(let status, let close):
            let response = LocalResponse.error(status, failure.description, requestID: failed.requestID, close: close,
                                               extraHeaders: failed.addedHeaders + (failed.rateLimit?.pairs ?? []))
            failed.responseBodyBytes = response.body.readableBytes
            writeLocal(response, head: failed.head, requestID: failed.requestID)
            record(failed, status: status, outcome: outcome)
            if close {
                closeAfterResponse(linger: failed.machine.requestBodyUnread)
            } else {
                arm(.keepalive, runtime.timeouts.keepalive)
                pumpRequest()
            }
        case .abortClient:
            record(failed, status: failed.machine.status, outcome: outcome)
            closeNow()
        }
    }

    /// Tries the request on another server when that is safe: it never reached an upstream
    /// (connect refused or timed out: any method), or it is an idempotent read without a body
    /// that was reset before any response byte. A request whose body was sent, or whose method
    /// may change state, is never sent twice. Retries also need the budget's leave.
    private func retry(_ exchange: Exchange, after failure: UpstreamFailure) -> Bool {
        let settings = runtime.config.retries
        guard !exchange.machine.responseStarted, exchange.retries < settings.attempts, state == .open else { return false }
        let neverReached = failure == .connectRefused || failure == .connectTimeout
        let safeAfterReset = failure == .reset && exchange.head.method.isIdempotentRead
            && !exchange.machine.requestHasBody && exchange.requestBodyBytes == 0
        guard neverReached || safeAfterReset else { return false }
        let now = NIODeadline.now()
        let failedServer = exchange.server.id
        var decision = exchange.decision
        runtime.router.retry(&decision, failed: failedServer, state: loop.routingState, balancer: &loop.balancer)
        // Nowhere else to go: the failure stands, and is answered and recorded as usual.
        guard let pool = decision.pool, let server = decision.server else { return false }
        guard loop.retryBudget.tryRetry(now: Int64(now.uptimeNanoseconds)) else {
            runtime.metrics.countEvent("gateway_retries_total", [("result", "budget_exhausted")])
            return false
        }
        releaseUpstream(of: exchange)
        loop.balancer.inFlight[failedServer] -= 1
        loop.recordOutcome(server: failedServer, failed: true, connectFailure: neverReached, now: now)
        runtime.metrics.countError(failure.metricKind)
        runtime.metrics.countEvent("gateway_retries_total", [("result", "retried"), ("reason", failure.metricKind)])
        exchange.decision = decision
        exchange.pool = runtime.pools[pool]
        exchange.server = runtime.servers[server]
        exchange.upstream = nil
        exchange.retries += 1
        exchange.heldHead = nil
        exchange.capture?.abandonAttempt()
        exchange.machine.restartAttempt()
        loop.balancer.inFlight[server] += 1
        arm(.acquire, exchange.server.acquireTimeout, now: now)
        switch loop.connectionPool(for: exchange.server).lease(for: self) {
        case .ready(let connection):
            attach(connection, now: now)
        case .pending:
            break
        }
        return true
    }

    /// The client side failed in the middle of its request body (too large, malformed, gone).
    func requestBodyFailed(status: Int, message: String, errorKind: String) {
        guard let failed = exchange else { return }
        releaseUpstream(of: failed)
        exchange = nil
        runtime.metrics.countError(errorKind)
        if failed.machine.responseStarted {
            record(failed, status: failed.machine.status, outcome: .neutral)
            closeNow()
            return
        }
        writeLocal(LocalResponse.error(status, message, requestID: failed.requestID, close: true),
                   head: failed.head, requestID: failed.requestID)
        record(failed, status: status, outcome: .neutral)
        closeAfterResponse(linger: true)
    }

    /// The exchange ends without a response (client gone, shutdown).
    func abandonExchange(status: Int, errorKind: String) {
        guard let abandoned = exchange else { return }
        releaseUpstream(of: abandoned)
        exchange = nil
        runtime.metrics.countError(errorKind)
        record(abandoned, status: status, outcome: .neutral)
    }

    /// Gives the upstream connection back, unusable (a half-done exchange leaves it in an
    /// unknown state), or cancels a lease still pending.
    func releaseUpstream(of exchange: Exchange) {
        if let connection = exchange.upstream {
            loop.connectionPool(for: connection.server).release(connection, reusable: false)
        } else {
            loop.connectionPool(for: exchange.server).cancel(self)
        }
    }
}
