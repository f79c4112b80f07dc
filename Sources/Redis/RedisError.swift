/// Why a command got no answer, or the answer was an error.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered with an error reply (`ERR ...`, `NOSCRIPT ...`, `WRONGTYPE ...`).
    case reply(String)
    /// No answer within the command timeout.
    case timeout
    /// The connection could not be made, or was lost with the command outstanding.
    case connection(String)
    /// The circuit breaker is open (Redis failed repeatedly): commands fail at once.
    case unavailable
    /// The server sent something that is not RESP.
    case protocolError(String)
    /// The client is shut down.
    case closed

    public var description: String {
        switch self {
        case .reply(let message): "redis: \(message)"
        case .timeout: "redis: timed out"
        case .connection(let reason): "redis: connection: \(reason)"
        case .unavailable: "redis: unavailable (circuit open)"
        case .protocolError(let reason): "redis: protocol error: \(reason)"
        case .closed: "redis: client closed"
        }
    }

    /// Errors that say something about Redis's health (an error reply does not).
    public var countsAgainstServer: Bool {
        switch self {
        case .timeout, .connection, .protocolError: true
        case .reply, .unavailable, .closed: false
        }
    }

    /// A short label for metrics.
    public var kind: String {
        switch self {
        case .reply: "reply"
        case .timeout: "timeout"
        case .connection: "connection"
        case .unavailable: "unavailable"
        case .protocolError: "protocol"
        case .closed: "closed"
        }
    }
}
