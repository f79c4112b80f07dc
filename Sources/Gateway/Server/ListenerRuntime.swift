import NIOCore

/// What a client connection needs to know about the listener it came in on.
struct ListenerRuntime: Sendable {
    /// `listen[i]`'s address as configured, the `listener` label of its metrics.
    let name: String
    /// Requests came over TLS: `X-Forwarded-Proto: https`, and the handshake comes first.
    private(set) var secure: Bool
    /// Every request is answered with a redirect to this HTTPS port (`redirect_https`).
    let redirectHTTPS: Int?
    /// Until the TLS handshake completes.
    let handshakeTimeout: TimeAmount
    /// HTTP/2 settings (ALPN `h2` on TLS, `h2c` on cleartext).
    let http2: HTTP2Config

    init(_ config: ListenerConfig) {
        name = config.address.description
        secure = config.tls != nil
        redirectHTTPS = config.redirectHTTPS
        handshakeTimeout = config.tls?.handshakeTimeout.timeAmount ?? .seconds(10)
        http2 = config.http2
    }

    static let cleartext = ListenerRuntime(ListenerConfig(address: ListenAddress(host: "0.0.0.0", port: 0)))
}
