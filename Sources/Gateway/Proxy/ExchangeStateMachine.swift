import HTTPWire
import Router

/// Why an exchange with an upstream failed; each maps to the status the client gets when no
/// response byte has reached it yet.
enum UpstreamFailure: Equatable, CustomStringConvertible {
    case connectRefused
    case connectTimeout
    /// The connection reset or closed before the response was complete.
    case reset
    case responseTimeout
    case malformedResponse
    /// Every connection of the chosen server was busy for `queue_timeout`.
    case queueTimeout
    /// No server was available to try.
    case noServer

    var status: Int {
        switch self {
        case .connectRefused, .reset, .malformedResponse: 502
        case .connectTimeout, .responseTimeout: 504
        case .queueTimeout, .noServer: 503
        }
    }

    /// The label of `gateway_errors_total{kind=...}`.
    var metricKind: String {
        switch self {
        case .connectRefused: "upstream_connect"
        case .connectTimeout: "upstream_connect_timeout"
        case .reset: "upstream_reset"
        case .responseTimeout: "upstream_timeout"
        case .malformedResponse: "upstream_malformed"
        case .queueTimeout: "upstream_queue_timeout"
        case .noServer: "no_upstream"
        }
    }

    var description: String {
        switch self {
        case .connectRefused: "upstream refused the connection"
        case .connectTimeout: "upstream connect timed out"
        case .reset: "upstream closed the connection"
        case .responseTimeout: "upstream timed out"
        case .malformedResponse: "upstream sent an invalid response"
        case .queueTimeout: "no upstream connection available"
        case .noServer: "no upstream server available"
        }
    }
}

/// The decisions of one request/response exchange, apart from any I/O: what framing and
/// persistence the client gets, whether the upstream connection can be reused, and what a
/// failure turns into. `DownstreamHandler` feeds it events and carries out what it returns.
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
        /// A 1xx interim response the client understands (HTTP/1.1): pass it on, keep waiting.
        case forwardInterim
        /// A 1xx the client cannot take (HTTP/1.0): drop it, keep waiting.
        case dropInterim
        case forward(ClientFraming, ResponseHeadWriter.Persistence)
        /// The upstream tried to switch protocols, which the gateway never asked for.
        case fail(UpstreamFailure)
    }

    struct Completion: Equatable {
        var reuseUpstream: Bool
        var closeClient: Bool
        /// A chunked body to the client needs its last chunk.
        var writeLastChunk: Bool
    }

    enum FailureAction: Equatable {
        /// Nothing reached the client yet: answer with an error.
        case respond(status: Int, closeClient: Bool)
        /// The response is half sent: the only honest signal left is closing the connection.
        case abortClient
    }

    let method: RequestMethod
    let clientMinorVersion: Int
    let clientKeepAlive: Bool
    let requestHasBody: Bool

    private(set) var request: RequestProgress = .waitingForUpstream
    private(set) var response: ResponseProgress = .awaitingHead
    private(set) var clientFraming: ClientFraming = .asIs
    private(set) var closeClient: Bool
    private var upstreamKeepAlive = true
    private(set) var status = 0

    init(method: RequestMethod, clientMinorVersion: Int, clientKeepAlive: Bool, requestHasBody: Bool) {
        self.method = method
        self.clientMinorVersion = clientMinorVersion
        self.clientKeepAlive = clientKeepAlive
        self.requestHasBody = requestHasBody
        self.closeClient = !clientKeepAlive
    }

    /// The response has started reaching the client: errors can no longer be reported.
    var responseStarted: Bool { response == .streaming || response == .complete }

    /// Whether a final response head came from the upstream (forwarded or held).
    var responseHeadReceived: Bool { response != .awaitingHead }

    /// Part of the request body is still unread on the client connection, so the next bytes
    /// there are not a new request: that connection cannot be reused.
    var requestBodyUnread: Bool { requestHasBody && request != .complete }

    /// An upstream connection is ready; returns whether a request body follows the head.
    mutating func upstreamAttached() -> Bool {
        request = requestHasBody ? .sendingBody : .complete
        return requestHasBody
    }

    mutating func requestBodyFinished() {
        request = .complete
    }

    /// Another attempt on another server, after a failure that left nothing on the client side:
    /// back to waiting for an upstream.
    mutating func restartAttempt() {
        precondition(!responseStarted, "a response already went out")
        request = .waitingForUpstream
        response = .awaitingHead
        upstreamKeepAlive = true
        status = 0
    }

    /// Shutdown or an error elsewhere: the client connection ends after this exchange.
    mutating func closeClientAfterResponse() {
        closeClient = true
    }

    mutating func responseHead(status: Int, framing: BodyFraming, keepAlive: Bool) -> HeadAction {
        if status < 200 {
            if status == 101 { return .fail(.malformedResponse) }
            return clientMinorVersion == 1 ? .forwardInterim : .dropInterim
        }
        self.status = status
        upstreamKeepAlive = keepAlive
        response = .headHeld
        clientFraming = ClientFraming.choose(upstream: framing, clientMinorVersion: clientMinorVersion)
        // A response that starts before the request body is read: the rest of that body would
        // be taken for the next request, so this connection ends with this response.
        if clientFraming == .untilClose || requestBodyUnread {
            closeClient = true
        }
        let persistence: ResponseHeadWriter.Persistence =
            closeClient ? .close : (clientMinorVersion == 0 ? .keepAlive : .implicit)
        return .forward(clientFraming, persistence)
    }

    /// The head went to the client: from here a failure can only cut the connection.
    mutating func responseHeadForwarded() {
        if response == .headHeld { response = .streaming }
    }

    mutating func responseEnded() -> Completion {
        response = .complete
        if requestBodyUnread { closeClient = true }
        return Completion(
            reuseUpstream: upstreamKeepAlive && request == .complete,
            closeClient: closeClient,
            writeLastChunk: clientFraming == .chunked
        )
    }

    mutating func upstreamFailed(_ failure: UpstreamFailure) -> FailureAction {
        guard !responseStarted else {
            closeClient = true
            return .abortClient
        }
        status = failure.status
        response = .complete
        if requestBodyUnread { closeClient = true }
        return .respond(status: failure.status, closeClient: closeClient)
    }
}
