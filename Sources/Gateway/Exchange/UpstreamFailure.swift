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
    /// The TLS handshake with an `https://` server failed (its certificate, name, protocol):
    /// nothing of the request reached it.
    case tls
    /// No server was available to try.
    case noServer
    /// A write (or a request bound for the primary) found no pool taking writes.
    case noPrimary

    var status: Int {
        switch self {
        case .connectRefused, .reset, .malformedResponse, .tls: 502
        case .connectTimeout, .responseTimeout: 504
        case .queueTimeout, .noServer, .noPrimary: 503
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
        case .tls: "upstream_tls"
        case .queueTimeout: "upstream_queue_timeout"
        case .noServer: "no_upstream"
        case .noPrimary: "no_primary"
        }
    }

    var description: String {
        switch self {
        case .connectRefused: "upstream refused the connection"
        case .connectTimeout: "upstream connect timed out"
        case .reset: "upstream closed the connection"
        case .responseTimeout: "upstream timed out"
        case .malformedResponse: "upstream sent an invalid response"
        case .tls: "upstream TLS handshake failed"
        case .queueTimeout: "no upstream connection available"
        case .noServer: "no upstream server available"
        case .noPrimary: "no primary database is available for writes"
        }
    }

    /// Nothing could be tried, and trying again in a moment may work (`Retry-After: 1`).
    var nothingToTry: Bool { self == .noServer || self == .noPrimary }

    /// What the failure says about the server, for passive outlier detection.
    var outcome: ExchangeOutcome {
        switch self {
        case .queueTimeout, .noServer, .noPrimary: .neutral
        case .connectRefused, .connectTimeout, .tls: .connectFailure
        case .reset, .responseTimeout, .malformedResponse: .failure
        }
    }
}
