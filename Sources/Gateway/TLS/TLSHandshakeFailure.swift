import NIOCore
import NIOSSL

/// Why a client's TLS handshake failed, as the `reason` of `gateway_tls_handshake_errors_total`
/// and the debug log: a few classes an operator can act on (clients too old, clients without
/// their certificate, plain HTTP sent to the HTTPS port, scanners), read from BoringSSL's error
/// names.
enum TLSHandshakeFailure {
    static let reasons = ["timeout", "protocol_version", "no_shared_cipher", "no_client_certificate",
                          "bad_client_certificate", "http_request", "not_tls", "alert", "closed", "other"]

    static func reason(of error: any Error) -> String {
        if let error = error as? NIOSSLError {
            switch error {
            case .uncleanShutdown: return "closed"
            case .handshakeFailed(let cause): return reason(ofBoringSSL: String(describing: cause))
            default: return "other"
            }
        }
        if let error = error as? ChannelError, error == .eof || error == .ioOnClosedChannel { return "closed" }
        if error is IOError { return "closed" }
        return reason(ofBoringSSL: String(describing: error))
    }

    /// BoringSSL's error names (`SSL_R_*`, lower- or upper-case in its strings) to a reason.
    static func reason(ofBoringSSL text: String) -> String {
        let text = text.uppercased()
        if text.contains("HTTP_REQUEST") || text.contains("HTTPS_PROXY_REQUEST") { return "http_request" }
        if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("WRONG_VERSION") || text.contains("PROTOCOL_VERSION")
            || text.contains("TOO_LOW") { return "protocol_version" }
        if text.contains("NO_SHARED_CIPHER") || text.contains("NO_SHARED_GROUP") || text.contains("NO_CIPHERS") { return "no_shared_cipher" }
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED") { return "no_client_certificate" }
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("BAD_CERTIFICATE") || text.contains("UNKNOWN_CA")
            || text.contains("CERTIFICATE_UNKNOWN") { return "bad_client_certificate" }
        if text.contains("ALERT") { return "alert" }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH") || text.contains("RECORD")
            || text.contains("DECODE_ERROR") || text.contains("UNEXPECTED_MESSAGE") { return "not_tls" }
        return "other"
    }
}
