/// What a client connection's (or an HTTP/2 stream's) one deadline is waiting for. An HTTP/2
/// stream uses the exchange's kinds and `.send` only; the connection-level ones are its
/// connection's business there.
enum ClientDeadline: Equatable {
    case none
    /// A TLS listener's handshake has not completed.
    case handshake
    /// Idle between requests.
    case keepalive
    /// Part of a head has arrived; the rest must arrive in time.
    case clientHeader
    /// Between two reads of a request body.
    case clientBody
    /// The exchange waits for an upstream connection (queue, then connect).
    case acquire
    /// The exchange waits for the upstream's response head, or between two reads of its body.
    case response
    /// The client does not read what it is sent.
    case send
    /// After an error response and a half-close, draining what the client still sends.
    case linger
    /// An upgraded connection (WebSocket): no byte either way for `timeouts.tunnel`.
    case tunnel

    /// The deadline an exchange's wait runs under.
    init(_ wait: ExchangeStateMachine.Wait) {
        switch wait {
        case .upstreamConnection: self = .acquire
        case .requestBody: self = .clientBody
        case .upstreamResponse: self = .response
        case .tunnel: self = .tunnel
        }
    }

    /// The exchange's wait this deadline ends, if it is one (the request body only once an
    /// exchange reads it; before, the downstream buffers it and answers the timeout itself).
    var exchangeWait: ExchangeStateMachine.Wait? {
        switch self {
        case .acquire: .upstreamConnection
        case .clientBody: .requestBody
        case .response: .upstreamResponse
        case .tunnel: .tunnel
        case .none, .handshake, .keepalive, .clientHeader, .send, .linger: nil
        }
    }
}
