import NIOCore
import NIOSSL
import NIOTLS

/// The TLS side of a client connection on a TLS listener: the handshake has its own deadline
/// (slow or silent clients are cut like slowloris), its outcome is counted, and the session's
/// version and ALPN protocol stay with the peer for the access log and X-Forwarded-Proto.
extension HTTP1Connection {
    /// Returns whether `event` was the handshake's completion (consumed here).
    func tlsHandshakeCompleted(_ event: Any, context: ChannelHandlerContext) -> Bool {
        guard let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event else { return false }
        let version = (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?.tlsVersion
        peer.tls = TLSSession(version: TLSSession.name(of: version), alpn: negotiated)
        runtime.metrics.countEvent("gateway_tls_handshakes_total", [("listener", listener.name), ("version", peer.tls!.version)])
        arm(.clientHeader, runtime.timeouts.clientHeader)
        if negotiated == "h2" { switchToHTTP2(context: context, carrying: nil) }
        return true
    }

    /// Counts a handshake that did not complete, once per connection.
    func tlsHandshakeFailed(reason: String) {
        guard !handshakeFailureCounted else { return }
        handshakeFailureCounted = true
        runtime.metrics.countEvent("gateway_tls_handshake_errors_total", [("listener", listener.name), ("reason", reason)])
        runtime.logger.debug("TLS handshake failed", metadata: ["client": "\(peer.text)", "reason": "\(reason)", "listener": "\(listener.name)"])
    }
}

/// A completed TLS session of a client connection.
struct TLSSession {
    /// `TLSv1.2`, `TLSv1.3`: OpenSSL's and nginx's `$ssl_protocol` names.
    var version: String
    /// The protocol ALPN agreed on, if the client offered one.
    var alpn: String?

    static func name(of version: TLSVersion?) -> String {
        switch version {
        case .tlsv13: "TLSv1.3"
        case .tlsv12: "TLSv1.2"
        case .tlsv11: "TLSv1.1"
        case .tlsv1: "TLSv1"
        case nil: "TLS"
        }
    }
}
