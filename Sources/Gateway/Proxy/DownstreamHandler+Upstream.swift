import NIOCore

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
        while state == .open, let exchange, let connection = exchange.upstream {
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
                forwardResponseHead(head, exchange: exchange, context: context)
            case .body(let part):
                exchange.responseBodyBytes += part.readableBytes
                if exchange.machine.clientFraming == .chunked {
                    writeToClient(ChunkedEncoding.header(part.readableBytes, allocator: context.channel.allocator))
                    writeToClient(part)
                    writeToClient(ChunkedEncoding.crlf)
                } else {
                    writeToClient(part)
                }
            case .end:
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

    private func forwardResponseHead(_ head: HTTPHead, exchange: Exchange, context: ChannelHandlerContext) {
        switch exchange.machine.responseHead(status: head.status, framing: head.framing, keepAlive: head.keepAlive) {
        case .forwardInterim:
            var out = context.channel.allocator.buffer(capacity: 32)
            out.writeStaticString("HTTP/1.1 ")
            out.writeString(head.string(head.part2))
            out.writeStaticString(" ")
            out.writeString(head.string(head.part3))
            out.writeStaticString("\r\n\r\n")
            writeToClient(out)
            flushClient()
        case .dropInterim:
            break
        case .forward(let framing, let persistence):
            var extra = exchange.corsHeaders
            if runtime.config.debugHeaders {
                extra += [
                    ("X-Gateway-Route", exchange.decision.isRead ? "read" : "write"),
                    ("X-Gateway-Region", runtime.router.regions.names[exchange.decision.region]),
                    ("X-Gateway-Pool", exchange.pool.name), ("X-Gateway-Server", exchange.server.authority),
                ]
            }
            beginClientWrite(minimumCapacity: head.raw.readableBytes + 256 + min(head.contentLength ?? 0, Self.coalesceLimit))
            ResponseHeadWriter.write(head, framing: framing, persistence: persistence, requestID: exchange.requestID,
                                     extraHeaders: extra, replaceCORS: exchange.appliesCORS, into: &clientPending)
        case .fail(let failure):
            failExchange(failure)
        }
    }

    /// The upstream closed: a close-delimited body ends here; anything else is cut short.
    private func finishAtUpstreamEOF(_ connection: UpstreamConnection) {
        do {
            switch try connection.parser.finish() {
            case .end:
                completeExchange()
            case .body, .head, .needMoreData:
                failExchange(.reset)
            }
        } catch {
            failExchange(.reset)
        }
    }

    private func completeExchange() {
        guard let context, exchange != nil else { return }
        let completion = exchange!.machine.responseEnded()
        let finished = exchange!
        exchange = nil
        if completion.writeLastChunk {
            writeToClient(ChunkedEncoding.lastChunk)
        }
        if let connection = finished.upstream {
            loop.connectionPool(for: connection.server).release(connection, reusable: completion.reuseUpstream)
        }
        let now = NIODeadline.now()
        record(finished, status: finished.machine.status, now: now)
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
        let action = failed.machine.upstreamFailed(failure)
        releaseUpstream(of: failed)
        exchange = nil
        runtime.metrics.countError(failure.metricKind)
        switch action {
        case .respond(let status, let close):
            let response = LocalResponse.error(status, failure.description, requestID: failed.requestID, close: close,
                                               extraHeaders: failed.corsHeaders)
            failed.responseBodyBytes = response.body.readableBytes
            writeLocal(response, head: failed.head, requestID: failed.requestID)
            record(failed, status: status)
            if close {
                closeAfterResponse(linger: failed.machine.requestBodyUnread)
            } else {
                arm(.keepalive, runtime.timeouts.keepalive)
                pumpRequest()
            }
        case .abortClient:
            record(failed, status: failed.machine.status)
            closeNow()
        }
    }

    /// The client side failed in the middle of its request body (too large, malformed, gone).
    func requestBodyFailed(status: Int, message: String, errorKind: String) {
        guard let failed = exchange else { return }
        releaseUpstream(of: failed)
        exchange = nil
        runtime.metrics.countError(errorKind)
        if failed.machine.responseStarted {
            record(failed, status: failed.machine.status)
            closeNow()
            return
        }
        writeLocal(LocalResponse.error(status, message, requestID: failed.requestID, close: true),
                   head: failed.head, requestID: failed.requestID)
        record(failed, status: status)
        closeAfterResponse(linger: true)
    }

    /// The exchange ends without a response (client gone, shutdown).
    func abandonExchange(status: Int, errorKind: String) {
        guard let abandoned = exchange else { return }
        releaseUpstream(of: abandoned)
        exchange = nil
        runtime.metrics.countError(errorKind)
        record(abandoned, status: status)
    }

    /// Gives the upstream connection back, unusable (a half-done exchange leaves it in an
    /// unknown state), or cancels a lease still pending.
    private func releaseUpstream(of exchange: Exchange) {
        if let connection = exchange.upstream {
            loop.connectionPool(for: connection.server).release(connection, reusable: false)
        } else {
            loop.connectionPool(for: exchange.server).cancel(self)
        }
    }
}
