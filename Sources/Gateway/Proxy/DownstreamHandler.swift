import HTTPWire
import NIOCore
import Router

/// One client connection. It parses requests from raw bytes, leases an upstream connection on
/// its own event loop, and streams bytes both ways with backpressure: it reads from the client
/// only while the upstream can take more, and from the upstream only while the client can.
/// Requests are served one at a time, so pipelined requests are answered in order; their bytes
/// wait in the parser, which is bounded, and past that bound the socket is not read.
///
/// Decisions about one exchange live in `ExchangeStateMachine`; this class translates channel
/// events into its inputs and carries out its answers.
final class DownstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum DeadlineKind {
        case none
        /// Idle between requests.
        case keepalive
        /// Part of a head has arrived; the rest must arrive in time.
        case clientHeader
        /// Between two reads of a request body.
        case clientBody
        /// Waiting for an upstream connection (queue, then connect).
        case acquire
        /// Waiting for the upstream's response head, or between two reads of its body.
        case response
        /// The client does not read what it is sent.
        case send
        /// After an error response and a half-close, draining what the client still sends.
        case linger
    }

    enum ConnectionState {
        case open
        case lingering
        case closed
    }

    /// One request in flight and everything known about it. A class: it is handed around and
    /// inspected many times per request, and a struct this size would be copied (and all its
    /// references retained) at every `if let`.
    final class Exchange {
        var machine: ExchangeStateMachine
        let head: HTTPHead
        let requestID: RequestID
        let start: NIODeadline
        var pool: PoolRuntime
        var server: UpstreamServer
        var decision: Router.Decision
        var upstream: UpstreamConnection?
        /// Retries made so far.
        var retries = 0
        /// Read-your-writes state of this request (reads: the requirement and its outcome).
        var readYourWrites: ReadYourWrites?
        /// A response head not yet written to the client (see `HeldHead`).
        var heldHead: HeldHead?
        /// The request as the cache sees it (a cached route's GET or HEAD).
        var cacheRequest: CacheRequest?
        /// The response being copied into the cache.
        var capture: CacheCapture?
        /// `RateLimit` fields for the response (a limited route).
        var rateLimit: RateLimitFields?
        let chunkedToUpstream: Bool
        /// Headers every response to this request gets: the route's CORS headers for this
        /// origin, its rate limit's `RateLimit` fields.
        let addedHeaders: [(String, String)]
        let appliesCORS: Bool
        var requestBodyBytes = 0
        var responseBodyBytes = 0
        var upstreamEOF = false

        init(machine: ExchangeStateMachine, head: HTTPHead, requestID: RequestID, start: NIODeadline,
             pool: PoolRuntime, server: UpstreamServer, decision: Router.Decision, chunkedToUpstream: Bool,
             addedHeaders: [(String, String)], appliesCORS: Bool) {
            self.machine = machine
            self.head = head
            self.requestID = requestID
            self.start = start
            self.pool = pool
            self.server = server
            self.decision = decision
            self.chunkedToUpstream = chunkedToUpstream
            self.addedHeaders = addedHeaders
            self.appliesCORS = appliesCORS
        }
    }

    let loop: LoopContext
    let runtime: GatewayRuntime
    var context: ChannelHandlerContext?
    var parser: HTTP1Parser
    var exchange: Exchange?
    var state = ConnectionState.open
    var pendingRead = false
    /// The client shut down its sending side: serve what it sent, then close.
    var inputClosed = false
    /// The current request waits for something before it can start — a replica to replay its
    /// client's write, a Redis lookup, another request's fetch of the same cache entry — and
    /// nothing else starts meanwhile (the waits have their own time limits).
    var parked = false {
        didSet {
            if parked {
                deadline = .distantFuture
                deadlineKind = .none
            }
        }
    }
    var deadline = NIODeadline.distantFuture
    var deadlineKind = DeadlineKind.none
    /// When a lingering close ends, however much the client still sends.
    var lingerUntil = NIODeadline.distantFuture
    /// nginx's lingering_timeout and lingering_time.
    static let lingerTimeout = TimeAmount.seconds(5)
    static let lingerTime = TimeAmount.seconds(30)
    static let lingerOnShutdown = TimeAmount.seconds(1)
    var peer: IPAddress?
    var peerText = "-" {
        didSet { clientText = peerText }
    }
    /// The current request's client address as routing, limits and logs see it: the peer, or
    /// the address a trusted proxy forwarded.
    var clientText = "-"
    /// The last Redis rate limit key made on this connection, for its next request.
    var rateLimitKeyCache: (policy: Int, address: IPAddress?, key: String)?
    /// Response bytes held back to go out in one write with what follows (a small body behind
    /// its head): each NIO write costs more than copying a few KiB. The buffer is reused: once
    /// NIO has written it, its storage is ours again, so most responses allocate nothing.
    var clientPending = ByteBuffer()
    var hasClientPending = false
    /// Something was written to the client since the last flush.
    var clientNeedsFlush = false
    var peerTrusted = false
    let maxBodyBytes: Int
    /// Unparsed bytes allowed to wait while a request is in flight (pipelining bound).
    let maxBufferedBytes: Int

    init(loop: LoopContext) {
        self.loop = loop
        self.runtime = loop.runtime
        let limits = loop.runtime.config.limits
        parser = HTTP1Parser(kind: .request, maxHeadBytes: limits.maxHeaderSize.bytes, maxHeaderCount: limits.maxHeaders)
        maxBodyBytes = limits.maxBodySize.bytes
        maxBufferedBytes = max(64 * 1024, limits.maxHeaderSize.bytes)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        if let remote = context.channel.remoteAddress, let address = IPAddress(socketAddress: remote) {
            peer = address
            peerText = address.description
            peerTrusted = runtime.trustedProxies.contains(address)
        }
        loop.register(self)
        arm(.clientHeader, runtime.timeouts.clientHeader)
        if loop.draining { drain() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .open:
            parser.append(unwrapInboundIn(data))
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
        exchange?.upstream?.flushIfNeeded()
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            switch state {
            case .lingering:
                closeNow()
            case .open:
                if exchange == nil { pumpRequest() }
            case .closed:
                break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if deadlineKind == .send { armResponseTimeout() }
            exchange?.upstream?.resumeReading()
            pumpResponse()
        } else if let upstream = exchange?.upstream {
            upstream.pauseReading()
            arm(.send, runtime.timeouts.send)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasOpen = state != .closed
        state = .closed
        if wasOpen, exchange != nil {
            // The client left mid-exchange: nginx's 499, "client closed request".
            abandonExchange(status: 499, errorKind: "client_closed")
        }
        loop.unregister(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
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
        guard let exchange else { return !parked || parser.bufferedBytes < maxBufferedBytes }
        if exchange.machine.request == .sendingBody {
            guard let upstream = exchange.upstream else { return parser.bufferedBytes < maxBufferedBytes }
            return upstream.isWritable && parser.bufferedBytes < maxBufferedBytes
        }
        return parser.bufferedBytes < maxBufferedBytes
    }

    func resumeClientReads() {
        if pendingRead, shouldReadFromClient, let context {
            pendingRead = false
            context.read()
        }
    }

    // MARK: Requests

    /// Pulls what the parser has, as far as the current state allows.
    func pumpRequest() {
        while state == .open, !parked {
            if exchange == nil {
                guard pumpNextHead() else { return }
            } else if exchange!.machine.request == .sendingBody, let upstream = exchange!.upstream {
                guard upstream.isWritable else {
                    // The upstream holds us back, not the client: its timeout applies meanwhile.
                    if deadlineKind != .response { arm(.response, exchange!.server.responseTimeout) }
                    upstream.flushIfNeeded()
                    return
                }
                guard pumpRequestBody(to: upstream) else { return }
            } else {
                return
            }
        }
    }

    /// Returns whether to keep pumping.
    private func pumpNextHead() -> Bool {
        if loop.draining && parser.isIdle {
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

    private func startExchange(_ head: HTTPHead) {
        let requestID: RequestID
        if let given = head.firstValue(.xRequestID), RequestID.isAcceptable(given) {
            requestID = RequestID(client: given)
        } else {
            requestID = loop.requestIDs.make()
        }

        var hasBody = false
        switch head.framing {
        case .none:
            _ = try? parser.next()  // the message's `.end`
        case .length(let length):
            if length > maxBodyBytes {
                respondLocally(LocalResponse.error(413, "request body larger than \(maxBodyBytes) bytes", requestID: requestID, close: true),
                               head: head, requestID: requestID, errorKind: "body_too_large", linger: true)
                return
            }
            hasBody = length > 0
            if !hasBody { _ = try? parser.next() }
        case .chunked:
            hasBody = true
        case .untilClose:
            break
        }
        if head.method == .connect {
            respondLocally(LocalResponse.error(405, "CONNECT is not supported", requestID: requestID, close: true),
                           head: head, requestID: requestID, errorKind: "bad_request", linger: true)
            return
        }

        let now = NIODeadline.now()
        let client = peerTrusted && peer != nil
            ? ClientAddress.resolve(peer: peer!, trusted: runtime.trustedProxies,
                                    forwardedFor: head.combinedValue(.xForwardedFor), forwarded: head.firstValue(named: "forwarded"))
            : peer
        clientText = client?.description ?? peerText
        let router = runtime.router
        var readYourWrites: ReadYourWrites?
        if runtime.consistency.enabled {
            readYourWrites = ReadYourWrites.prepare(head, client: client?.description ?? peerText, runtime: runtime)
        }
        let routed = Router.Request(method: head.method, path: NormalizedPath(head.path), host: head.host,
                                    client: client, headerTrusted: peerTrusted, requirement: readYourWrites?.requirement ?? .any)
        let decision = router.decide(routed, headers: head, state: loop.routingState, balancer: &loop.balancer)

        var addedHeaders: [(String, String)] = []
        var appliesCORS = false
        if let policy = router.cors(for: decision), let origin = head.firstValue(.origin) {
            if head.method == .options, let requested = head.firstValue(named: "access-control-request-method") {
                answerPreflight(policy, origin: origin, requestedMethod: requested, head: head, requestID: requestID, hasBody: hasBody)
                return
            }
            addedHeaders = policy.responseHeaders(origin: origin)
            appliesCORS = true
        }
        var start = PendingStart(head: head, requestID: requestID, hasBody: hasBody, now: now,
                                 addedHeaders: addedHeaders, appliesCORS: appliesCORS, readYourWrites: readYourWrites)
        start.client = client
        if let limits = runtime.rateLimits, let policy = limits.policy(forRoute: decision.route) {
            return checkRateLimit(limits.policies[policy], limits: limits, start, decision, routed)
        }
        admitted(start, decision, routed)
    }

    /// Past the rate limit: the cache, or on to the upstream.
    func admitted(_ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request) {
        var start = start
        let head = start.head
        if let cache = runtime.cache, let route = decision.route, let policy = cache.policies[route],
           head.method == .get || head.method == .head {
            if let request = cacheRequest(head, client: start.client, decision: decision, policy: policy, hasBody: start.hasBody) {
                start.cache = request
                lookUpCache(start, decision, routed)
                return
            }
            loop.cacheStats.bypasses &+= 1
        }
        continueToUpstream(start, decision, routed)
    }

    /// After the cache (a miss, or no cache): waits for a replica if the client's own write
    /// demands it, then launches.
    func continueToUpstream(_ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request) {
        let router = runtime.router
        let head = start.head
        let now = start.now
        // A read that must see the client's own write, where only the primary has it yet: wait a
        // little for a replica to replay it before settling for the primary.
        if case .replayed(let needed) = routed.requirement, decision.toWritePool || decision.pool == nil,
           let queries = loop.consistencyQueries, runtime.consistency.maxWait.nanoseconds > 0 {
            let databases = Set(router.replicaCandidates(region: decision.region, state: loop.routingState).compactMap { runtime.poolDatabase[$0] })
            if !databases.isEmpty {
                parked = true
                queries.waitForReplay(databases: Array(databases), target: needed, timeout: runtime.consistency.maxWait, on: loop.eventLoop)
                    .assumeIsolated()
                    .whenComplete { result in
                        self.parked = false
                        guard self.state == .open else { return }
                        let waited = NIODeadline.now() - now
                        var start = start
                        if case .success(let database?) = result {
                            self.loop.noteReplay(database: database, lsn: needed)
                            start.readYourWrites?.outcome = .waited
                        } else {
                            start.readYourWrites?.outcome = .primaryPinned
                        }
                        self.runtime.metrics.recordConsistencyWait(nanoseconds: waited.nanoseconds)
                        let decision = router.decide(routed, headers: head, state: self.loop.routingState, balancer: &self.loop.balancer)
                        self.launch(start, decision)
                        self.pumpRequest()
                    }
                return
            }
        }
        launch(start, decision)
    }

    /// What `startExchange` hands to `launch` (possibly after waiting for a replica).
    struct PendingStart {
        let head: HTTPHead
        let requestID: RequestID
        let hasBody: Bool
        let now: NIODeadline
        var addedHeaders: [(String, String)]
        let appliesCORS: Bool
        var readYourWrites: ReadYourWrites?
        var cache: CacheRequest?
        /// The client address (from a trusted proxy's forwarding headers, else the peer).
        var client: IPAddress? = nil
        /// The route's rate limit fields, for every response.
        var rateLimit: RateLimitFields? = nil
    }

    /// Starts the exchange a decision calls for: an upstream lease, or a quick 503.
    func launch(_ start: PendingStart, _ decision: Router.Decision) {
        let head = start.head
        var readYourWrites = start.readYourWrites
        readYourWrites?.settle(decision, state: loop.routingState, router: runtime.router)
        if let outcome = readYourWrites?.outcome {
            runtime.metrics.countEvent("gateway_consistency_reads_total", [("outcome", outcome.rawValue)])
        }
        guard let poolIndex = decision.pool, let serverIndex = decision.server else {
            // No fetch happens: requests waiting for this one go their own way.
            if let id = start.cache?.coalesceID { runtime.cache?.store.coalescer.finish(id, entry: nil) }
            if serveStaleIfError(start.cache, head: head, requestID: start.requestID, addedHeaders: start.addedHeaders,
                                 rateLimit: start.rateLimit) { return }
            let message = decision.noWritePool ? "no primary database is available for writes" : UpstreamFailure.noServer.description
            respondLocally(LocalResponse.error(503, message, requestID: start.requestID, close: start.hasBody,
                                               extraHeaders: start.addedHeaders + (start.rateLimit?.pairs ?? []) + [("Retry-After", "1")]),
                           head: head, requestID: start.requestID, errorKind: decision.noWritePool ? "no_primary" : UpstreamFailure.noServer.metricKind,
                           linger: start.hasBody)
            return
        }
        let server = runtime.servers[serverIndex]
        let exchange = Exchange(
            machine: ExchangeStateMachine(
                method: head.method, clientMinorVersion: head.minorVersion,
                clientKeepAlive: head.keepAlive && !inputClosed, requestHasBody: start.hasBody),
            head: head, requestID: start.requestID, start: start.now, pool: runtime.pools[poolIndex], server: server,
            decision: decision, chunkedToUpstream: head.framing == .chunked, addedHeaders: start.addedHeaders,
            appliesCORS: start.appliesCORS)
        exchange.readYourWrites = readYourWrites
        exchange.rateLimit = start.rateLimit
        if let request = start.cache {
            exchange.cacheRequest = request
            if !request.lookupOnly {
                // The entry reflects what its pool had replayed; a read that had to see a
                // position went only where that position was, so its entry reflects it too (the
                // probes' positions lag by up to an interval).
                var lsn = loop.routingState.positionLSN[poolIndex]?.value ?? 0
                if case .replayed(let needed) = decision.requirement { lsn = max(lsn, needed.value) }
                exchange.capture = CacheCapture(
                    request: request, fetchStartedAt: CacheRuntime.unixMilliseconds(),
                    lsn: lsn, routeHasCORS: runtime.router.cors(for: decision) != nil)
            }
        }
        if loop.draining { exchange.machine.closeClientAfterResponse() }
        self.exchange = exchange
        loop.balancer.inFlight[serverIndex] += 1
        loop.retryBudget.recordRequest(now: Int64(start.now.uptimeNanoseconds))

        arm(.acquire, server.acquireTimeout)
        switch loop.connectionPool(for: server).lease(for: self) {
        case .ready(let connection):
            attach(connection, now: .now())
        case .pending:
            break
        }
    }

    /// A CORS preflight on a route with a policy: answered here, never forwarded.
    private func answerPreflight(_ policy: CORSPolicy, origin: String, requestedMethod: String, head: HTTPHead,
                                 requestID: RequestID, hasBody: Bool) {
        var headers: [(String, String)] = []
        if case .allowed(let allowed) = policy.preflight(
            origin: origin, requestMethod: requestedMethod, requestHeaders: head.firstValue(named: "access-control-request-headers")) {
            headers = allowed
        }
        let response = LocalResponse(status: 204, headers: headers, body: ByteBuffer(), close: hasBody || !head.keepAlive)
        respondLocally(response, head: head, requestID: requestID, errorKind: nil, linger: hasBody)
    }

    /// An upstream connection is ours: send the head, then the body as it comes.
    func attach(_ connection: UpstreamConnection, now: NIODeadline) {
        guard let exchange else { return }
        let head = exchange.head
        connection.owner = self
        connection.beginRequest(respondingToHead: head.method == .head)
        exchange.upstream = connection
        let bodyFollows = exchange.machine.upstreamAttached()

        let forwarding = ForwardingContext(
            peerAddress: peerText, peerIsTrusted: peerTrusted, requestID: exchange.requestID,
            extraHeaders: runtime.routingHeaders[exchange.decision.region][exchange.decision.toWritePool ? 1 : 0],
            dropConditionals: exchange.capture != nil)
        connection.headScratch.clear()
        RequestHeadWriter.write(head, context: forwarding, chunkedBody: exchange.chunkedToUpstream, into: &connection.headScratch)
        connection.write(connection.headScratch)
        if bodyFollows {
            arm(.clientBody, runtime.timeouts.clientBody, now: now)
            pumpRequest()
            resumeClientReads()
        } else {
            connection.flush()
            deadlineKind = .response
            deadline = now + exchange.server.responseTimeout
        }
        if connection.parser.bufferedBytes > 0, self.exchange === exchange {
            pumpResponse()
        }
    }

    /// Forwards body parts while the upstream can take them; returns whether to keep pumping.
    private func pumpRequestBody(to upstream: UpstreamConnection) -> Bool {
        let event: HTTP1Parser.Event
        do {
            event = try parser.next()
        } catch {
            upstream.flush()
            requestBodyFailed(status: 400, message: "\(error)", errorKind: "bad_request")
            return false
        }
        switch event {
        case .body(let part):
            exchange!.requestBodyBytes += part.readableBytes
            if exchange!.requestBodyBytes > maxBodyBytes {
                requestBodyFailed(status: 413, message: "request body larger than \(maxBodyBytes) bytes", errorKind: "body_too_large")
                return false
            }
            if exchange!.chunkedToUpstream {
                upstream.write(ChunkedEncoding.header(part.readableBytes, allocator: context!.channel.allocator))
                upstream.write(part)
                upstream.write(ChunkedEncoding.crlf)
            } else {
                upstream.write(part)
            }
            arm(.clientBody, runtime.timeouts.clientBody)
            return true
        case .end:
            if exchange!.chunkedToUpstream {
                upstream.write(ChunkedEncoding.lastChunk)
            }
            upstream.flush()
            exchange!.machine.requestBodyFinished()
            if !exchange!.machine.responseStarted { armResponseTimeout() }
            resumeClientReads()
            return true
        case .needMoreData:
            upstream.flush()
            if inputClosed {
                // The client stopped sending in the middle of its body.
                requestBodyFailed(status: 400, message: "request body incomplete", errorKind: "bad_request")
            }
            return false
        case .head:
            closeNow()
            return false
        }
    }

    // MARK: Closing

    func closeNow() {
        guard state != .closed, let context else { return }
        flushClient()
        state = .closed
        context.close(promise: nil)
    }

    /// After a final error response: stop sending, keep reading (and dropping) for a moment so
    /// the client reads the response instead of a reset (nginx's lingering close).
    func closeAfterResponse(linger: Bool) {
        guard state == .open, let context else { return }
        flushClient()
        guard linger, !inputClosed else {
            state = .closed
            context.close(mode: .all, promise: nil)
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
    func drain() {
        if state == .lingering {
            let now = NIODeadline.now()
            lingerUntil = min(lingerUntil, now + Self.lingerOnShutdown)
            if deadline > lingerUntil { arm(.linger, lingerUntil - now, now: now) }
            return
        }
        guard state == .open else { return }
        if exchange == nil {
            if parser.isIdle { closeNow() }
        } else {
            exchange!.machine.closeClientAfterResponse()
        }
    }

    func forceClose() {
        if exchange != nil {
            abandonExchange(status: 503, errorKind: "shutdown")
        }
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
