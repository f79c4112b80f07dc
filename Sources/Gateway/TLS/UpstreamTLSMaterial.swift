import NIOCore
import NIOSSL
import Router

/// The TLS client context of a pool's `https://` servers (or of `rediss://`), made once when the configuration is
/// loaded: the CA file and client certificate are read and checked then, so a missing file or a
/// key that is not the certificate's is a config error naming file, line and key, not a 502 at
/// the first request. One context serves every connection of the pool (BoringSSL contexts are
/// shared safely across threads).
public final class UpstreamTLSMaterial: Sendable {
    let context: NIOSSLContext
    let settings: UpstreamTLSConfig

    init(settings: UpstreamTLSConfig, path: [ConfigPathComponent], directory: String, warnings: inout [ConfigValidationError])
        throws(ConfigValidationError)
    {
        self.settings = settings
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.shutdownTimeout = TLSServerMaterial.closeNotifyTimeout
        // The data path speaks HTTP/1.1 to upstreams (as nginx does).
        configuration.applicationProtocols = ["http/1.1"]
        if !settings.verify {
            configuration.certificateVerification = .none
            warnings.append(ConfigValidationError(path + ["verify"],
                "verify: false: the pool's https:// servers are not authenticated (any certificate is accepted)"))
        } else if let caFile = settings.caFile {
            let file = TLSServerMaterial.resolve(caFile, in: directory)
            configuration.trustRoots = .certificates(try TLSServerMaterial.readCertificates(file, path: path + ["ca_file"]))
        }
        if let cert = settings.cert, let key = settings.key {
            let certFile = TLSServerMaterial.resolve(cert, in: directory)
            let keyFile = TLSServerMaterial.resolve(key, in: directory)
            let chain = try TLSServerMaterial.readCertificates(certFile, path: path + ["cert"])
            let privateKey: NIOSSLPrivateKey
            do { privateKey = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
                throw ConfigValidationError(path + ["key"], "cannot read a PEM private key from \(keyFile) (\(error))")
            }
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(privateKey)
        }
        do { context = try NIOSSLContext(configuration: configuration) } catch {
            let key: ConfigPathComponent = settings.cert != nil ? "key" : "ca_file"
            throw ConfigValidationError(path + [key], "cannot set up upstream TLS: \(error)")
        }
    }

    /// The name a server's (or Redis') connections send by SNI and expect in its certificate.
    func serverName(forHost host: String) -> String? {
        if let sni = settings.sni { return sni }
        // SNI carries no IP addresses (RFC 6066 §3); the certificate is then checked against
        // the address connected to.
        return IPAddress(host) == nil ? host : nil
    }

    /// Installs this context's client handler first in `channel`'s pipeline.
    func addHandler(to channel: Channel, serverName: String?) throws {
        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
    }
}
