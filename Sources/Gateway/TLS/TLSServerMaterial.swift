import Foundation
import NIOCore
import NIOSSL

/// A TLS listener's certificates, keys and client CA, read and checked when the configuration is
/// loaded, and the `NIOSSLContext` made from them. Every certificate is tried with its key in a
/// context of its own first, so a mismatched pair is named at load time, not at the first
/// handshake that picks it.
public final class TLSServerMaterial: Sendable {
    /// One certificate of the listener and the names SNI selects it by.
    struct Identity: Sendable {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        /// Lower-cased DNS names of the leaf's subjectAltName (`*.example.com` included).
        let names: [String]
        /// When the leaf stops being valid (seconds since 1970).
        let notValidAfter: Int
    }

    let identities: [Identity]
    let context: NIOSSLContext
    let settings: TLSListenerConfig
    /// Names to identities, exact and wildcard (`*.example.com`), first certificate wins.
    private let byName: [String: Int]

    /// Reads the files of `settings`; `path` is the config path of the `tls:` key (for errors),
    /// `directory` what relative file names are relative to.
    init(settings: TLSListenerConfig, path: [ConfigPathComponent], directory: String, warnings: inout [ConfigValidationError])
        throws(ConfigValidationError)
    {
        self.settings = settings
        var identities: [Identity] = []
        let now = Int(Date().timeIntervalSince1970)
        for (index, pair) in settings.certificates.enumerated() {
            let pairPath = settings.certificatesListed ? path + ["certificates", .index(index)] : path
            let certFile = Self.resolve(pair.cert, in: directory)
            let keyFile = Self.resolve(pair.key, in: directory)
            let chain = try Self.readCertificates(certFile, path: pairPath + ["cert"])
            let key: NIOSSLPrivateKey
            guard FileManager.default.isReadableFile(atPath: keyFile) else {
                throw ConfigValidationError(pairPath + ["key"], "cannot read \(keyFile)")
            }
            do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
                throw ConfigValidationError(pairPath + ["key"], "\(keyFile) holds no PEM private key (\(error))")
            }
            do {
                _ = try NIOSSLContext(configuration: .makeServerConfiguration(
                    certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
            } catch {
                throw ConfigValidationError(pairPath + ["key"], "\(keyFile) is not the private key of \(certFile) (\(error))")
            }
            let leaf = chain[0]
            let names = leaf._subjectAlternativeNames().compactMap { name -> String? in
                guard name.nameType == .dnsName else { return nil }
                return String(decoding: name.contents, as: UTF8.self).lowercased()
            }
            if names.isEmpty, index > 0 {
                throw ConfigValidationError(pairPath + ["cert"],
                    "\(certFile) has no DNS name in its subjectAltName, so SNI can never select it (only the first certificate is a default)")
            }
            let expiry = Int(leaf.notValidAfter)
            if expiry < now {
                warnings.append(ConfigValidationError(pairPath + ["cert"],
                    "\(certFile) expired on \(Self.format(expiry)); clients will refuse it"))
            } else if Int(leaf.notValidBefore) > now {
                warnings.append(ConfigValidationError(pairPath + ["cert"],
                    "\(certFile) is not valid before \(Self.format(Int(leaf.notValidBefore)))"))
            }
            identities.append(Identity(chain: chain, key: key, names: names, notValidAfter: expiry))
        }
        var byName: [String: Int] = [:]
        for (index, identity) in identities.enumerated() {
            for name in identity.names where byName[name] == nil { byName[name] = index }
        }
        self.identities = identities
        self.byName = byName

        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: identities[0].chain.map { .certificate($0) }, privateKey: .privateKey(identities[0].key))
        configuration.minimumTLSVersion = settings.minVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.cipherSuites = settings.ciphers.joined(separator: ":")
        configuration.shutdownTimeout = Self.closeNotifyTimeout
        configuration.applicationProtocols = settings.alpn
        if let clientCA = settings.clientCA {
            let file = Self.resolve(clientCA, in: directory)
            let roots = try Self.readCertificates(file, path: path + ["client_ca"])
            configuration.trustRoots = .certificates(roots)
            configuration.certificateVerification = settings.clientAuth == .required ? .noHostnameVerification : .optionalVerification
            // Tell clients which CAs are accepted, so one with several certificates picks right.
            configuration.sendCANameList = true
        }
        let lookup = byName
        let candidates = identities
        if identities.count > 1 {
            configuration.sslContextCallback = { values, promise in
                guard let index = Self.select(values.serverHostname, in: lookup), index > 0 else {
                    return promise.succeed(.noChanges)
                }
                var override = NIOSSLContextConfigurationOverride()
                override.certificateChain = candidates[index].chain.map { .certificate($0) }
                override.privateKey = .privateKey(candidates[index].key)
                promise.succeed(override)
            }
        }
        do { context = try NIOSSLContext(configuration: configuration) } catch {
            throw ConfigValidationError(path, "cannot set up TLS: \(error)")
        }
    }

    /// How long a closing TLS connection waits for the peer's close_notify (NIOSSL's default is
    /// 5 s). NIOSSL's wait timer holds the connection's handler, its 33–64 KiB read buffer and
    /// its SSL object, and is not cancelled when the peer just drops the TCP connection (most
    /// HTTP clients do): at 2,000 closes a second the default kept ~500 MB alive. HTTP needs no
    /// close_notify from the peer (RFC 9110 §9.8 allows an incomplete close, and nginx does not
    /// wait for it either); every byte of ours, close_notify included, is written before it.
    /// What stays alive is rate × this wait: 100 ms keeps it near 10 MB at 2,000 closes a second
    /// (500 ms measured ~60 MB), and still lets a nearby client's close_notify in.
    static let closeNotifyTimeout = TimeAmount.milliseconds(100)

    /// The certificate for an SNI name: an exact name, then a wildcard one label deep (RFC 6125
    /// §6.4.3: `*.example.com` covers `api.example.com`, not `example.com` or `a.b.example.com`).
    static func select(_ serverName: String?, in names: [String: Int]) -> Int? {
        guard let serverName = serverName?.lowercased(), !serverName.isEmpty else { return nil }
        if let exact = names[serverName] { return exact }
        guard let dot = serverName.firstIndex(of: ".") else { return nil }
        return names["*" + serverName[dot...]]
    }

    /// A PEM file's certificates (at least one), or the config error naming `path`.
    static func readCertificates(_ file: String, path: [ConfigPathComponent]) throws(ConfigValidationError) -> [NIOSSLCertificate] {
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw ConfigValidationError(path, "cannot read \(file)")
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(file) } catch {
            throw ConfigValidationError(path, "\(file) holds no PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw ConfigValidationError(path, "\(file) holds no PEM certificate") }
        return chain
    }

    static func resolve(_ file: String, in directory: String) -> String {
        file.hasPrefix("/") ? file : URL(fileURLWithPath: directory).appendingPathComponent(file).path
    }

    private static func format(_ seconds: Int) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))) + " UTC"
    }
}
