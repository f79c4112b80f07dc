import NIOCore

/// What a client connection needs to know about the listener it came in on.
struct ListenerRuntime: Sendable {
    /// `listen[i]`'s address as configured, the `listener` label of its metrics.
    let name: String
    /// Requests came over TLS: `X-Forwarded-Proto: https`, and the handshake comes first.
    let secure: Bool
    /// Every request is answered with a redirect to this HTTPS port (`redirect_https`).
    let redirectHTTPS: Int?
    /// Until the TLS handshake completes.
    let handshakeTimeout: TimeAmount

    init(_ config: ListenerConfig) {
        name = config.address.description
        secure = config.tls != nil
        redirectHTTPS = config.redirectHTTPS
        handshakeTimeout = config.tls?.handshakeTimeout.timeAmount ?? .seconds(10)
    }

    static let cleartext = ListenerRuntime(ListenerConfig(address: ListenAddress(host: "0.0.0.0", port: 0)))
}
