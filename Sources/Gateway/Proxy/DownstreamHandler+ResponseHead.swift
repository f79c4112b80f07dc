import Cache
import HTTPWire
import NIOCore
import Router

/// A response head on its way to the client: what the cache makes of it, what a successful
/// write must do before its client hears of it (a read-your-writes token, cache
/// invalidations), and holding a retryable read's head until its body starts.
extension DownstreamHandler {
    /// A final response head that has not gone to the client yet.
    struct HeldHead {
        enum Reason {
            /// A successful write's token or cache invalidation is being prepared: the
            /// upstream is paused meanwhile.
            case followUp
            /// A retryable read whose body has not started: if the upstream dies now, the
            /// request can still go elsewhere, since the client has seen nothing.
            case firstBodyByte
        }

        let head: HTTPHead
        let framing: ClientFraming
        let persistence: ResponseHeadWriter.Persistence
        var extra: [(String, String)]
        let reason: Reason
    }

    /// Returns false when the exchange stops here for now (its head held for a follow-up, or
    /// replaced by a stale entry).
    func forwardResponseHead(_ head: HTTPHead, exchange: Exchange, connection: UpstreamConnection,
                             context: ChannelHandlerContext) -> Bool {
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
            if head.status >= 500, replaceWithStale(exchange) { return false }
            if let capture = exchange.capture, !capture.admit(head, requestHead: exchange.head) {
                capture.finish(succeeded: false, loop: loop)
                exchange.capture = nil
            }
            let followUp = writeFollowUp(for: exchange, head: head)
            if followUp.waits {
                exchange.heldHead = HeldHead(head: head, framing: framing, persistence: persistence, extra: [], reason: .followUp)
                connection.pauseReading()
                run(followUp, for: exchange, connection: connection)
                return false
            }
            if holdsUntilBody(exchange, head: head) {
                exchange.heldHead = HeldHead(head: head, framing: framing, persistence: persistence, extra: followUp.headers,
                                             reason: .firstBodyByte)
            } else {
                writeResponseHead(head, framing: framing, persistence: persistence, exchange: exchange, extra: followUp.headers)
            }
        case .fail(let failure):
            failExchange(failure)
        }
        return true
    }

    /// Writes a head held for its body's first byte (which has now come).
    func releaseHeldHead(_ exchange: Exchange) {
        guard let held = exchange.heldHead else { return }
        exchange.heldHead = nil
        writeResponseHead(held.head, framing: held.framing, persistence: held.persistence, exchange: exchange, extra: held.extra)
    }

    /// An idempotent read without a body that may still be retried, whose response announces a
    /// body: nothing goes to the client before that body starts. A server killed between the
    /// two (gunicorn writes them separately) then costs a retry, not a truncated response.
    /// Only for a `Content-Length` body, which follows at once: a stream's head goes out
    /// without waiting for its first event.
    private func holdsUntilBody(_ exchange: Exchange, head: HTTPHead) -> Bool {
        exchange.head.method.isIdempotentRead && exchange.head.method != .head && !exchange.machine.requestHasBody
            && exchange.retries < runtime.config.retries.attempts && (head.contentLength ?? 0) > 0
    }

    func writeResponseHead(_ head: HTTPHead, framing: ClientFraming, persistence: ResponseHeadWriter.Persistence,
                           exchange: Exchange, extra tokenHeaders: [(String, String)]) {
        exchange.machine.responseHeadForwarded()
        var extra = exchange.addedHeaders + tokenHeaders
        if let readYourWrites = exchange.readYourWrites, readYourWrites.dropToken {
            extra += runtime.consistency.dropHeaders
        }
        if runtime.config.debugHeaders {
            extra += [
                ("X-Gateway-Route", exchange.decision.isRead ? "read" : "write"),
                ("X-Gateway-Region", runtime.router.regions.names[exchange.decision.region]),
                ("X-Gateway-Pool", exchange.pool.name), ("X-Gateway-Server", exchange.server.authority),
            ]
            if let outcome = exchange.readYourWrites?.outcome {
                extra.append(("X-Gateway-Consistency", outcome.rawValue))
            }
            if let request = exchange.cacheRequest {
                extra.append(("X-Cache", request.label))
            }
        }
        beginClientWrite(minimumCapacity: head.raw.readableBytes + 256 + min(head.contentLength ?? 0, Self.coalesceLimit))
        ResponseHeadWriter.write(head, framing: framing, persistence: persistence, requestID: exchange.requestID,
                                 extraHeaders: extra, rateLimit: exchange.rateLimit, replaceCORS: exchange.appliesCORS, into: &clientPending)
    }

    // MARK: Stale if error

    /// A 5xx from the upstream (or a failure before any response) on a cached route with an
    /// entry within `stale_if_error`: the entry answers instead, and the upstream is dropped.
    func replaceWithStale(_ exchange: Exchange) -> Bool {
        let now = CacheRuntime.unixMilliseconds()
        guard let request = exchange.cacheRequest, let entry = request.staleFallback, entry.freshness(now: now) != .expired
        else { return false }
        dropForStale(exchange)
        _ = serveStaleIfError(request, head: exchange.head, requestID: exchange.requestID, addedHeaders: exchange.addedHeaders,
                              rateLimit: exchange.rateLimit, startedAt: exchange.start, now: now)
        pumpRequest()
        resumeClientReads()
        flushClient()
        return true
    }

    /// Ends an exchange that a stale entry answers: the server's failure still counts against
    /// it, and the exchange's own record is the cache's (logged as a stale answer).
    func dropForStale(_ exchange: Exchange) {
        releaseUpstream(of: exchange)
        if self.exchange === exchange { self.exchange = nil }
        loop.balancer.inFlight[exchange.server.id] -= 1
        loop.recordOutcome(server: exchange.server.id, failed: true, connectFailure: false, now: .now())
        exchange.capture?.finish(succeeded: false, loop: loop)
    }

    // MARK: A successful write's follow-up

    /// What a successful write does before its head goes out. Reads-your-writes tokens and
    /// invalidations need the write's WAL position (from the API's header, or one query to the
    /// primary); the head waits for them so that the client's next request already sees them.
    struct WriteFollowUp {
        /// Ready now (time pins, a position from the API's header).
        var headers: [(String, String)] = []
        /// lsn mode without the API's header: the token needs the database's position.
        var tokenNeedsPosition = false
        var position: LSN?
        /// Where the position comes from.
        var database: (index: Int, queries: ConsistencyQueries)?
        /// Cache keys to invalidate.
        var invalidations: [String] = []

        var waits: Bool { tokenNeedsPosition || !invalidations.isEmpty }
    }

    private func writeFollowUp(for exchange: Exchange, head: HTTPHead) -> WriteFollowUp {
        var followUp = WriteFollowUp()
        guard !exchange.decision.isRead else { return followUp }
        if let database = runtime.poolDatabase[exchange.pool.index], let queries = loop.consistencyQueries {
            followUp.database = (database, queries)
        }
        let consistency = runtime.consistency
        if let name = consistency.settings.lsnHeader, let value = head.firstValue(named: name) {
            followUp.position = LSN(value)
        }
        if (200..<300).contains(head.status) {
            followUp.invalidations = invalidationKeys(for: exchange)
        }
        // A token after a successful write (2xx/3xx).
        guard consistency.enabled, exchange.readYourWrites != nil, (200..<400).contains(head.status) else { return followUp }
        switch consistency.settings.mode {
        case .none:
            break
        case .time:
            followUp.headers = issuePin(for: exchange, kind: "time")
        case .lsn:
            if let position = followUp.position {
                followUp.headers = issue(.replayed(position), for: exchange, kind: "lsn_header")
            } else if followUp.database != nil {
                followUp.tokenNeedsPosition = true
            } else {
                followUp.headers = issuePin(for: exchange, kind: "lsn_unavailable")
            }
        }
        return followUp
    }

    /// Position, then token and invalidation, then the held head goes out.
    private func run(_ followUp: WriteFollowUp, for exchange: Exchange, connection: UpstreamConnection) {
        let eventLoop = loop.eventLoop
        let position: EventLoopFuture<LSN?>
        if followUp.position == nil, let database = followUp.database {
            position = database.queries.currentLSN(database: database.index, on: eventLoop)
                .map { Optional($0) }
                .recover { _ in nil }
        } else {
            position = eventLoop.makeSucceededFuture(followUp.position)
        }
        position.assumeIsolated().flatMap { lsn -> EventLoopFuture<[(String, String)]> in
            var headers = followUp.headers
            if followUp.tokenNeedsPosition {
                headers = lsn.map { self.issue(.replayed($0), for: exchange, kind: "lsn") } ?? self.issuePin(for: exchange, kind: "lsn_unavailable")
            }
            guard !followUp.invalidations.isEmpty, let cache = self.runtime.cache else {
                return eventLoop.makeSucceededFuture(headers)
            }
            let now = CacheRuntime.unixMilliseconds()
            return cache.store.invalidate(followUp.invalidations, tombstone: cache.tombstone(writeLSN: lsn, now: now), now: now,
                                          on: eventLoop, client: self.loop.redis)
                .assumeIsolated()
                .map { _ in
                    self.loop.cacheStats.invalidations &+= UInt64(followUp.invalidations.count)
                    return headers
                }
                .recover { _ in
                    // The write happened: its client gets its answer. Entries Redis still
                    // holds expire with their TTL; the failure is counted and logged.
                    self.loop.cacheStats.invalidationFailures &+= UInt64(followUp.invalidations.count)
                    self.runtime.logger.warning("cache invalidation failed", metadata: [
                        "keys": .stringConvertible(followUp.invalidations.joined(separator: " ")),
                        "request_id": .stringConvertible(exchange.requestID),
                    ])
                    return headers
                }
                .nonisolated()
        }
        .whenSuccess { headers in
            guard self.exchange === exchange, self.state == .open, let held = exchange.heldHead else { return }
            exchange.heldHead = nil
            self.writeResponseHead(held.head, framing: held.framing, persistence: held.persistence, exchange: exchange, extra: headers)
            connection.resumeReading()
            self.pumpResponse()
            self.flushClient()
        }
    }

    /// The keys a successful write on this route removes: its `invalidates` templates, and the
    /// cached GET of the URI it wrote (RFC 9111 §4.4), each rendered from the write request.
    func invalidationKeys(for exchange: Exchange) -> [String] {
        guard let cache = runtime.cache else { return [] }
        let head = exchange.head
        let path = NormalizedPath(head.path)
        var keys: [String] = []
        if let route = exchange.decision.route, !cache.invalidations[route].isEmpty {
            let inputs = RequestKeyInputs(head: head, path: path, parameters: runtime.router.parameters(of: exchange.decision, path: path))
            keys += cache.invalidations[route].map { $0.render(inputs) }
        }
        let table = runtime.router.table
        if let match = table.match(path: path, method: .get, host: head.host, headers: head), let policy = cache.policies[match.index] {
            let inputs = RequestKeyInputs(head: head, path: path, parameters: table.parameters(of: match, path: path))
            let key = policy.key.render(inputs)
            if !keys.contains(key) { keys.append(key) }
        }
        return keys
    }

    /// A time pin (time mode, or lsn mode when the position could not be had).
    private func issuePin(for exchange: Exchange, kind: String) -> [(String, String)] {
        issue(.primaryUntil(ConsistencyRuntime.unixMilliseconds() + runtime.consistency.stickyForMilliseconds), for: exchange, kind: kind)
    }

    private func issue(_ requirement: ConsistencyToken.Requirement, for exchange: Exchange, kind: String) -> [(String, String)] {
        let consistency = runtime.consistency
        let now = ConsistencyRuntime.unixMilliseconds() / 1000
        let token = ConsistencyToken(requirement: requirement, expires: now + consistency.ttlSeconds)
        if let store = consistency.store, let identity = exchange.readYourWrites?.identity {
            store.record(token, for: identity, now: now)
        }
        runtime.metrics.countEvent("gateway_consistency_tokens_total", [("kind", kind)])
        return consistency.issueHeaders(token)
    }
}
