import NIOConcurrencyHelpers
import NIOSSL

/// The TLS context a listener hands each new connection. It can be swapped while the gateway
/// runs (SIGHUP re-reads the certificate files): connections accepted afterwards get the new
/// certificates, established ones keep the session they have, as with nginx's reload.
final class ListenerCertificates: Sendable {
    private let current: NIOLockedValueBox<TLSServerMaterial>

    init(_ material: TLSServerMaterial) {
        current = NIOLockedValueBox(material)
    }

    /// Read once per accepted connection (a lock taken once per TLS handshake).
    var context: NIOSSLContext { current.withLockedValue { $0.context } }

    var material: TLSServerMaterial { current.withLockedValue { $0 } }

    func replace(with material: TLSServerMaterial) {
        current.withLockedValue { $0 = material }
    }
}
