import HTTPWire
import Router

/// The decisions of one exchange, apart from any I/O and from the client's protocol: how far
/// the request and the response are, whether the upstream connection can carry another
/// request, when a retry is safe, when a head is held back or may be replaced by a stale
/// entry, what a failure turns into, and which timeout applies while the exchange waits.
/// `Exchange` feeds it events and carries out what it returns (the shape of
/// async-http-client's `HTTP1ConnectionStateMachine`).
struct ExchangeStateMachine {
    enum RequestProgress: Equatable {
        case waitingForUpstream
        case sendingBody
        case complete
    }

    enum ResponseProgress: Equatable {
        case awaitingHead
        /// The head came from the upstream but has not gone to the client yet: a failure can
        /// still be answered (or retried).
        case headHeld
        case streaming
        case complete
    }

    enum HeadAction: Equatable {
        /// A 1xx interim response: handed to the client side, which passes it on if its
        /// protocol version knows it; the final head is still to come.
        case interim
        /// A final head. `mayBeReplaced`: a 5xx that a stale entry may answer instead, or a
        /// 304 that may refresh a stored entry.
        /// `holdUntilBody`: a read that could still be retried elsewhere, whose head waits for
        /// its body's first byte.
        case final(mayBeReplaced: Bool, holdUntilBody: Bool)
        /// The upstream agreed to the protocol switch the client asked for (101): from here
        /// both connections are one byte tunnel.
        case switchProtocols
        /// The upstream tried to switch protocols, which the gateway never asked for.
        case fail(UpstreamFailure)
    }

    enum FailureAction: Equatable {
        /// Nothing reached the client yet: a fallback answers, else an error with this status.
        case answer(status: Int)
        /// The response is half sent: cutting the client off is the only honest signal left.
        case abort
    }

    /// What the exchange waits for; the client side keeps one deadline for it.
    enum Wait: Equatable {
        /// A connection from the pool (queue, then connect).
        case upstreamConnection
        /// The client's next body bytes.
        case requestBody
        /// The upstream's response head or its next body bytes (or taking the request body).
        case upstreamResponse
        /// The next byte in either direction of a tunnel.
        case tunnel
    }

    let method: RequestMethod
    let requestHasBody: Bool
    /// The client asked to switch protocols and the route allows it: the `Upgrade` request was
    /// forwarded, so a 101 is an answer, not an error.
    let upgradeRequested: Bool
    /// `retries.attempts`.
    let maxRetries: Int

    private(set) var request: RequestProgress = .waitingForUpstream
    private(set) var response: ResponseProgress = .awaitingHead
    private var upstreamKeepAlive = true
    private(set) var status = 0
    private(set) var retries = 0

    init(method: RequestMethod, requestHasBody: Bool, maxRetries: Int, upgradeRequested: Bool = false) {
        self.method = method
        self.requestHasBody = requestHasBody
        self.maxRetries = maxRetries
        self.upgradeRequested = upgradeRequested
    }

    /// A 101 went through: the exchange is a byte tunnel until either side closes.
    var tunnelling: Bool { status == 101 }

    /// The response has started reaching the client: errors can no longer be reported.
    var responseStarted: Bool { response == .streaming || response == .complete }

    /// Whether a final response head came from the upstream (forwarded or held).
    var responseHeadReceived: Bool { response != .awaitingHead }

    /// Part of the request body is still unread on the client side.
    var requestBodyUnread: Bool { requestHasBody && request != .complete }

    /// An upstream connection is ready; returns whether a request body follows the head.
    mutating func upstreamAttached() -> Bool {
        request = requestHasBody ? .sendingBody : .complete
        return requestHasBody
    }

    mutating func requestBodyFinished() {
        request = .complete
    }

    /// Which timeout runs while the exchange waits: the client's body timeout while it still
    /// sends a body the upstream takes and has not answered; otherwise the upstream's response
    /// timeout — also while the upstream holds the body back, for then the client is not at
    /// fault.
    func waiting(upstreamWritable: Bool) -> Wait {
        if tunnelling { return .tunnel }
        return request == .sendingBody && !responseStarted && upstreamWritable ? .requestBody : .upstreamResponse
    }

    // MARK: Retries

    /// Whether the request may go to another server after `failure`: it never reached an
    /// upstream (connect refused or timed out: any method), or it is an idempotent read
    /// without a body that was reset before any response byte. A request whose body was sent,
    /// or whose method may change state, is never sent twice. The budget and a server to go
    /// to are the caller's to check.
    func retryIsSafe(after failure: UpstreamFailure) -> Bool {
        guard !responseStarted, retries < maxRetries else { return false }
        switch failure {
        case .connectRefused, .connectTimeout, .tls: return true
        case .reset: return method.isIdempotentRead && !requestHasBody
        default: return false
        }
    }

    /// Another attempt on another server begins: back to waiting for an upstream.
    mutating func retrying() {
        precondition(!responseStarted, "a response already went out")
        retries += 1
        request = .waitingForUpstream
        response = .awaitingHead
        upstreamKeepAlive = true
        status = 0
    }

    // MARK: Response

    mutating func responseHead(status: Int, contentLength: Int?, keepAlive: Bool) -> HeadAction {
        if status == 101 {
            guard upgradeRequested, request == .complete else { return .fail(.malformedResponse) }
            self.status = 101
            upstreamKeepAlive = false
            response = .streaming
            return .switchProtocols
        }
        if status < 200 {
            return .interim
        }
        self.status = status
        upstreamKeepAlive = keepAlive
        response = .headHeld
        // A body that follows at once (Content-Length) is waited for: a server killed between
        // head and body (gunicorn writes them separately) then costs a retry, not a truncated
        // response. A stream's head goes out without waiting for its first event.
        let holdUntilBody = method.isIdempotentRead && method != .head && !requestHasBody
            && retries < maxRetries && (contentLength ?? 0) > 0
        return .final(mayBeReplaced: status >= 500 || status == 304, holdUntilBody: holdUntilBody)
    }

    /// The head went to the client: from here a failure can only cut the connection.
    mutating func responseHeadForwarded() {
        if response == .headHeld { response = .streaming }
    }

    /// Returns whether the upstream connection can carry another request.
    mutating func responseEnded() -> Bool {
        response = .complete
        return upstreamKeepAlive && request == .complete
    }

    mutating func failed(_ failure: UpstreamFailure) -> FailureAction {
        guard !responseStarted else { return .abort }
        status = failure.status
        response = .complete
        return .answer(status: failure.status)
    }
}
