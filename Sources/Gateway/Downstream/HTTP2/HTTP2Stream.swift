import HTTPWire
import NIOCore
import NIOHTTP2

/// One HTTP/2 stream: its request HEADERS become the `HTTPHead` of an `Exchange` (through the
/// same head parser and limits as an HTTP/1.1 request), its DATA the request body, and what the
/// exchange sends back becomes HEADERS and DATA frames. It is the exchange's downstream, as an
/// `HTTP1Connection` is for HTTP/1.1, and keeps the stream's one deadline (checked by its
/// connection, which the loop's sweeper checks).
///
/// No channel of its own: frames come from and go to the connection's `HTTP2Connection` and its
/// `HTTP2ServerCodec`. (A child channel per stream, as NIOHTTP2's multiplexer makes, cost a
/// pipeline, futures and promises per request, which was most of HTTP/2's CPU.)
///
/// Backpressure both ways: DATA the upstream cannot take yet waits here and is not acknowledged
/// (no WINDOW_UPDATE), so the client stops after one stream window; response bytes the codec
/// holds for the client's window (or the socket) make the stream unwritable past a watermark,
/// and the exchange stops reading its upstream. Neither stalls the connection's other streams.
final class HTTP2Stream: ExchangeDownstream {
    let id: HTTP2StreamID
    /// Strong: a cycle while the stream is in its connection's table, which every way a stream
    /// ends leaves (`streamClosed` → `streamGone`; a closing connection closes its streams).
    /// `unowned` cost an atomic check-and-retain on every use, several per request.
    private let connection: HTTP2Connection
    private let loop: LoopContext
    private var runtime: GatewayRuntime
    private(set) var exchange: Exchange?
    private(set) var deadline = NIODeadline.distantFuture
    private var deadlineKind = ClientDeadline.none

    // Request
    private var head: HTTPHead?
    /// The client sent END_STREAM (or trailers): no more DATA.
    private var requestEnded = false
    /// A body being read whole before the exchange starts (`limits.request_buffering`).
    private var buffering: BufferedRequestBody?
    /// DATA the exchange cannot take yet (not acknowledged to the client until it is taken).
    /// Made with the first DATA that waits: NIO's CircularBuffer allocates when it is made and
    /// again on `removeAll()`, three allocations per request for a GET that never needs it.
    private var waitingBody: CircularBuffer<ByteBuffer>?
    private var inboundWindow: HTTP2InboundWindow
    private var bodyBytes = 0
    /// The request's `content-length`: its DATA must add up to exactly this (RFC 9113 §8.1.1),
    /// or the upstream would read a different body than the one the head announced.
    private var declaredLength: Int?

    // Response
    private var frames = HTTP2ResponseFrames()
    private var isHeadRequest = false
    /// Response bytes handed to the codec and not yet on the socket.
    private var unsentBytes = 0
    private var blocked = false
    /// The stream is gone (closed, reset, or its connection closed).
    private(set) var closed = false

    /// Past this, the stream is unwritable until the queue falls under `lowWatermark`
    /// (NIOHTTP2's stream channel defaults).
    static let highWatermark = 8192
    static let lowWatermark = 4096

    init(id: HTTP2StreamID, connection: HTTP2Connection, windowTarget: Int) {
        self.id = id
        self.connection = connection
        self.loop = connection.loop
        runtime = connection.loop.runtime
        inboundWindow = HTTP2InboundWindow(target: windowTarget)
    }

    // MARK: Request

    /// The request HEADERS: refused here, buffered for its body, or an exchange now.
    func receiveHead(_ headers: HTTP2HeaderFields, endStream: Bool) {
        let start = NIODeadline.now()
        let limits = runtime.config.limits
        requestEnded = endStream
        // Destructured, not copied out of a tuple: a second reference would make the write copy it.
        var raw: ByteBuffer
        let spare: HTTPHead?
        (raw, spare) = connection.requestHead()
        let written: HTTP2RequestHead.Written
        do {
            written = try HTTP2RequestHead.write(headers, endStream: endStream, into: &raw)
        } catch {
            // RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR.
            connection.countStreamError()
            return reset(.protocolError)
        }
        isHeadRequest = written.isHead
        let head: HTTPHead
        do throws(HTTPParseError) {
            // max_header_list_size bounds the head as written too: the codec's HPACK bound
            // starts only once the client acknowledged the SETTINGS.
            guard raw.readableBytes <= connection.headerListBytes else { throw HTTPParseError.headTooLarge }
            head = try HTTPHeadParser.parse(raw, kind: .request, maxHeaderCount: limits.maxHeaders, reusing: spare)
        } catch {
            return refuse(error.requestStatus, error.description, errorKind: error.requestStatus == 431 ? "header_too_large" : "bad_request",
                          head: nil, start: start)
        }
        self.head = head
        if case .length(let length) = head.framing {
            guard !endStream || length == 0 else { return malformed("content-length \(length) on a request without DATA") }
            declaredLength = length
        }
        if let refusal = RequestAdmission.refusal(of: head, maxBodyBytes: connection.maxBodyBytes) {
            return refuse(refusal, head: head, start: start)
        }
        var hasBody = !endStream
        if case .length(let length) = head.framing { hasBody = hasBody && length > 0 }
        if RequestAdmission.buffersBody(head, hasBody: hasBody, requestBufferingBytes: connection.requestBufferingBytes) {
            buffering = BufferedRequestBody()
            arm(.clientBody, runtime.timeouts.clientBody)
            return
        }
        startExchange(head, hasBody: hasBody, bufferedBody: nil, startedAt: start)
    }

    private func startExchange(_ head: HTTPHead, hasBody: Bool, bufferedBody: BufferedRequestBody?, startedAt: NIODeadline = .now()) {
        let exchange = Exchange(head: head, hasBody: hasBody, downstream: self, loop: loop, peer: connection.peer,
                                bufferedBody: bufferedBody, startedAt: startedAt)
        self.exchange = exchange
        runtime = exchange.runtime
        exchange.start()
    }

    /// A DATA frame's bytes; `endStream` ends the body.
    func receiveData(_ bytes: ByteBuffer, endStream: Bool) {
        guard !requestEnded, !closed else { return }
        if endStream { requestEnded = true }
        let count = bytes.readableBytes
        bodyBytes += count
        if let declared = declaredLength, bodyBytes > declared || (endStream && bodyBytes < declared) {
            return malformed("DATA of \(bodyBytes) bytes for a content-length of \(declared)")
        }
        if bodyBytes > connection.maxBodyBytes {
            let refusal = RequestAdmission.bodyTooLarge(connection.maxBodyBytes)
            if let exchange {
                exchange.requestBodyFailed(refusal)
            } else if buffering != nil {
                buffering = nil
                refuse(refusal, head: head, start: .now())
            }
            return
        }
        if var body = buffering, let head {
            // Read whole (bounded by request_buffering), so taken at once.
            if count > 0 {
                body.parts.append(bytes)
                body.bytes += count
                acknowledge(count)
            }
            if endStream {
                body.complete = true
                buffering = nil
                startExchange(head, hasBody: true, bufferedBody: body)
            } else if body.bytes > connection.requestBufferingBytes {
                buffering = nil
                startExchange(head, hasBody: true, bufferedBody: body)
            } else {
                buffering = body
                arm(.clientBody, runtime.timeouts.clientBody)
            }
            return
        }
        if count > 0 {
            inboundWindow.received(count)
            if waitingBody == nil { waitingBody = CircularBuffer(initialCapacity: 4) }
            waitingBody!.append(bytes)
        }
        pumpRequestBody()
    }

    /// Trailers: dropped (as for HTTP/1.1); they end the body.
    func receiveTrailers() {
        receiveData(ByteBuffer(), endStream: true)
    }

    /// Gives the exchange what it can take of the body, and the end once all of it went.
    private func pumpRequestBody() {
        guard let exchange, exchange.sendsRequestBody else { return }
        while let part = waitingBody?.first {
            guard exchange.upstreamWritable else {
                // The upstream holds us back, not the client: its timeout applies meanwhile.
                if deadlineKind != .response { arm(.response, exchange.responseTimeout) }
                exchange.flushUpstream()
                return
            }
            waitingBody!.removeFirst()
            exchange.forwardRequestBody(part, allocator: connection.allocator)
            acknowledge(part.readableBytes)
            guard !closed, self.exchange === exchange, exchange.sendsRequestBody else { return }
        }
        if requestEnded {
            exchange.requestBodyEnded()
        } else {
            arm(.clientBody, runtime.timeouts.clientBody)
        }
        exchange.flushUpstream()
    }

    private func acknowledge(_ bytes: Int) {
        if let increment = inboundWindow.taken(bytes) { connection.windowUpdate(id, increment) }
    }

    /// The codec reports the stream's receive window (after DATA, or a WINDOW_UPDATE sent).
    func inboundWindowChanged(to size: Int) {
        if let increment = inboundWindow.windowChanged(to: size) { connection.windowUpdate(id, increment) }
    }

    /// The upstream side wrote what this read gave it.
    func flushUpstream() {
        exchange?.flushUpstream()
    }

    // MARK: Refusals (requests that never become exchanges)

    private func refuse(_ refusal: RequestAdmission.Refusal, head: HTTPHead?, start: NIODeadline) {
        refuse(refusal.status, refusal.message, errorKind: refusal.errorKind, head: head, start: start)
    }

    /// Answers with an error; the rest of the request (if any) is not read.
    private func refuse(_ status: Int, _ message: String, errorKind: String, head: HTTPHead?, start: NIODeadline) {
        let requestID = head.map { RequestID.of($0, generator: &loop.requestIDs) } ?? loop.requestIDs.make()
        let response = LocalResponse.error(status, message, requestID: requestID, errorKind: errorKind)
        runtime.metrics.countError(errorKind)
        write(.local(response), exchange: nil, requestID: requestID)
        ExchangeLog.recordRefusal(head: head, status: status, requestID: requestID, bytesOut: response.body.readableBytes,
                                  client: connection.peer.text, tls: connection.peer.tls?.version ?? "-", http2: true, start: start, loop: loop)
        finishResponse()
    }

    // MARK: ExchangeDownstream

    var isWritable: Bool { !closed && !blocked && connection.isWritable }

    func sendHead(_ head: ResponseHead, for exchange: Exchange) {
        write(head, exchange: exchange, requestID: exchange.requestID)
    }

    /// The composed head as HEADERS, and the body of cached and local answers (none for HEAD).
    private func write(_ response: ResponseHead, exchange: Exchange?, requestID: RequestID) {
        guard !closed else { return }
        let composing = ResponseComposer.Context(
            exchange: exchange, requestID: requestID, persistence: .implicit, date: loop.dateCache.current(),
            debugHeaders: runtime.config.debugHeaders)
        var head = connection.responseHeadBuffer()
        ResponseComposer.write(response, framing: .asIs, composing, into: &head)
        frames.head(head)
        switch response {
        case .upstream:
            break
        case .cached(let answer):
            if !isHeadRequest, let body = answer.body { frames.body(body, emit: emit) }
        case .local(let local):
            if !isHeadRequest { frames.body(local.body, emit: emit) }
        }
    }

    func sendInterim(_ head: HTTPHead) {
        guard !closed else { return }
        // A copy: the upstream's bytes are not kept for the next head (see `send`).
        var text = connection.responseHeadBuffer()
        text.writeImmutableBuffer(head.raw)
        frames.interim(text, emit: emit)
        connection.flush()
    }

    func sendBody(_ part: ByteBuffer) {
        guard !closed, !isHeadRequest else { return }
        frames.body(part, emit: emit)
    }

    func flush() {
        guard !closed else { return }
        frames.flush(emit)
        connection.flush()
    }

    func exchangeEnded(_ ended: Exchange, _ end: ExchangeEnd) {
        guard exchange === ended else { return }
        exchange = nil
        deadline = .distantFuture
        deadlineKind = .none
        switch end {
        case .completed:
            finishResponse()
        case .aborted:
            // The client learns the response was cut short from the reset.
            reset(.internalError)
        case .abandoned:
            // The client left (the stream is gone), timed out, or the gateway shuts down.
            reset(.cancel)
        }
    }

    /// END_STREAM on the last frame; a request body still coming is refused with
    /// RST_STREAM(NO_ERROR), as RFC 9113 §8.1 has a server that answered early do.
    private func finishResponse() {
        guard !closed else { return }
        buffering = nil
        waitingBody = nil
        guard !requestEnded else {
            frames.end(emit)
            return connection.flush()
        }
        // The reset waits for the response: the codec drops DATA still held for the client's
        // window when the stream is reset.
        let sent = loop.eventLoop.makePromise(of: Void.self)
        frames.end { send($0, promise: sent) }
        sent.futureResult.whenSuccess {
            guard !self.closed else { return }
            self.reset(.noError)
        }
        connection.flush()
    }

    private func emit(_ frame: HTTP2ResponseFrames.Frame) {
        // Only body parts that may pile up are counted (with a promise each): what ends the
        // stream, and heads, need no backpressure.
        guard case .data(let bytes, endStream: false) = frame else { return send(frame, promise: nil) }
        let size = bytes.readableBytes
        unsentBytes += size
        if unsentBytes >= Self.highWatermark { blocked = true }
        let promise = connection.loop.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in self.sent(size) }
        send(frame, promise: promise)
    }

    private func send(_ frame: HTTP2ResponseFrames.Frame, promise: EventLoopPromise<Void>?) {
        switch frame {
        case .headers(let head, let endStream):
            connection.codec.sendHead(id, head, endStream: endStream, promise: promise)
            // Encoded: the text's buffer serves the connection's next head.
            connection.recycleResponseHead(head)
        case .data(let bytes, let endStream):
            connection.codec.sendData(id, bytes, endStream: endStream, promise: promise)
        }
    }

    private func sent(_ size: Int) {
        unsentBytes -= size
        if blocked, unsentBytes < Self.lowWatermark {
            blocked = false
            writabilityChanged()
        }
    }

    /// The stream or its connection can take more, or no longer.
    func writabilityChanged() {
        guard let exchange else { return }
        if isWritable {
            if deadlineKind == .send { exchange.armWait() }
            exchange.downstreamWritable()
        } else if exchange.downstreamBlocked() {
            arm(.send, runtime.timeouts.send)
        }
    }

    func arm(_ wait: ExchangeStateMachine.Wait, timeout: TimeAmount, now: NIODeadline) {
        arm(ClientDeadline(wait), timeout, now: now)
    }

    func requestBodyWanted(now: NIODeadline, restartTimeout: Bool) {
        if restartTimeout { arm(.clientBody, runtime.timeouts.clientBody, now: now) }
        pumpRequestBody()
    }

    func exchangeSuspended() {
        deadline = .distantFuture
        deadlineKind = .none
    }

    func exchangeResumed() {}

    func responseBlocked() {
        if deadlineKind != .send { arm(.send, runtime.timeouts.send) }
        flush()
    }

    /// HTTP/2 has no 101: `HTTP2RequestHead` refuses the fields an upgrade needs, so no tunnel
    /// starts here.
    func beginTunnel() -> ByteBuffer {
        ByteBuffer()
    }

    // MARK: The end of the stream

    /// Ends the stream with RST_STREAM (its exchange, if any, was told or ends now).
    /// A malformed request: a stream error of type PROTOCOL_ERROR (RFC 9113 §8.1.1); an exchange
    /// already started is cut (its upstream connection is not reused).
    private func malformed(_ reason: String) {
        connection.countStreamError()
        runtime.logger.debug("malformed HTTP/2 request", metadata: ["stream": "\(id)", "reason": "\(reason)"])
        reset(.protocolError, status: 400, errorKind: "bad_request")
    }

    /// `status` and `errorKind`: what an exchange still running is logged with. The stream
    /// closes before the RST_STREAM goes: the codec reports the closing it causes, and that
    /// report must find the stream closed already.
    private func reset(_ code: HTTP2ErrorCode, status: Int = 499, errorKind: String = "client_closed") {
        guard !closed else { return }
        streamClosed(status: status, errorKind: errorKind)
        connection.write(HTTP2Frame(streamID: id, payload: .rstStream(code)))
        connection.flush()
    }

    /// The codec closed the stream (both ends done, or a reset either way), or its connection
    /// went: an exchange still running lost its client (nginx's 499).
    func streamClosed(status: Int = 499, errorKind: String = "client_closed") {
        guard !closed else { return }
        closed = true
        inboundWindow.closed = true
        waitingBody = nil
        buffering = nil
        deadline = .distantFuture
        connection.streamGone(self)
        exchange?.abandon(status: status, errorKind: errorKind)
        if let head {
            self.head = nil
            connection.recycleRequestHead(head)
        }
    }

    /// Shutdown: a stream still running is cut.
    func forceClose() {
        exchange?.abandon(status: 503, errorKind: "shutdown")
        reset(.cancel)
    }

    // MARK: The deadline

    private func arm(_ kind: ClientDeadline, _ timeout: TimeAmount, now: NIODeadline = .now()) {
        deadlineKind = kind
        deadline = now + timeout
    }

    func deadlineExpired(now: NIODeadline) {
        let kind = deadlineKind
        deadline = .distantFuture
        deadlineKind = .none
        if let wait = kind.exchangeWait, let exchange { return exchange.deadlineExpired(wait) }
        switch kind {
        case .clientBody:
            if buffering != nil {
                buffering = nil
                refuse(408, "timed out reading the request body", errorKind: "client_timeout", head: head, start: now)
            }
        case .send:
            if let exchange { exchange.abandon(status: exchange.machine.status, errorKind: "client_send_timeout") }
            reset(.cancel)
        default:
            return
        }
    }
}
