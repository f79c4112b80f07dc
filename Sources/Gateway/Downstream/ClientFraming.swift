import HTTPWire

/// How a response body is framed towards an HTTP/1.x client; it differs from the upstream's
/// framing when the gateway re-chunks (a close-delimited body to an HTTP/1.1 client keeps the
/// client's connection alive) or de-chunks (HTTP/1.0 clients know no chunked coding).
enum ClientFraming: Equatable {
    /// No body, or a Content-Length body: the upstream's length header is forwarded.
    case asIs
    case chunked
    /// Body until the gateway closes the connection (HTTP/1.0 clients only).
    case untilClose

    static func choose(upstream: BodyFraming, clientMinorVersion: Int) -> ClientFraming {
        switch upstream {
        case .none, .length: .asIs
        case .chunked, .untilClose: clientMinorVersion == 1 ? .chunked : .untilClose
        }
    }
}
