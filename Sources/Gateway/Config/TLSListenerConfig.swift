/// `tls:` of a listener: its certificates (picked by SNI), protocol versions, ALPN and optional
/// client-certificate verification. Files are PEM; relative paths are relative to the
/// configuration file. The files are read, and each certificate checked against its key, when
/// the configuration is loaded (`TLSServerMaterial`).
public struct TLSListenerConfig: Decodable, Sendable {
    /// A certificate chain (leaf first) and its private key.
    public struct CertificatePair: Decodable, Sendable, Equatable {
        public var cert: String
        public var key: String

        enum CodingKeys: String, CodingKey, CaseIterable { case cert, key }

        public init(cert: String, key: String) {
            self.cert = cert
            self.key = key
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            cert = try c.decode(String.self, forKey: .cert)
            key = try c.decode(String.self, forKey: .key)
        }
    }

    public enum Version: String, Sendable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    public enum ClientAuth: String, Sendable {
        /// A handshake without a client certificate the CA signed fails.
        case required
        /// A certificate is asked for and verified when given; clients without one get in.
        case optional
    }

    /// The first is the default (clients without SNI, or naming no certificate's host).
    public var certificates: [CertificatePair]
    /// Written as `certificates:` (errors name `certificates[i]`), not as `cert:`/`key:`.
    var certificatesListed = false
    public var minVersion = Version.tls12
    /// Protocols offered by ALPN, in preference order: HTTP/2 first, as nginx with `http2 on`.
    public var alpn = ["h2", "http/1.1"]
    /// TLS 1.2 suites offered (OpenSSL names). The default offers one per key type, so the
    /// suite is the server's choice, not the client's: the nearest thing to a server cipher
    /// order that BoringSSL through NIOSSL allows (it has no server-preference switch).
    public var ciphers = TLSListenerConfig.defaultCiphers
    /// CA certificates (PEM) that sign the client certificates accepted: mTLS.
    public var clientCA: String?
    public var clientAuth = ClientAuth.required
    /// From the TCP accept until the handshake completes; then the connection is closed.
    public var handshakeTimeout = ConfigDuration.seconds(10)

    /// One AEAD suite per key type: every TLS 1.2 client with ECDHE speaks AES-128-GCM (RFC 7540
    /// makes the RSA one mandatory for HTTP/2).
    public static let defaultCiphers = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]
    /// The suites `ciphers:` may name: forward-secret AEAD only, Mozilla's "intermediate" list
    /// (no CBC, so no LUCKY13; no RSA key exchange). TLS 1.3 suites are BoringSSL's own, all AEAD.
    public static let allowedCiphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ]

    /// Protocols this gateway can speak after ALPN.
    static let supportedProtocols = ["h2", "http/1.1"]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case certificates, cert, key, alpn, ciphers
        case minVersion = "min_version"
        case clientCA = "client_ca"
        case clientAuth = "client_auth"
        case handshakeTimeout = "handshake_timeout"
    }

    public init(certificates: [CertificatePair]) { self.certificates = certificates }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if c.contains(.certificates) {
            if c.contains(.cert) || c.contains(.key) {
                throw DecodingError.dataCorruptedError(forKey: .cert, in: c,
                    debugDescription: "give either cert: and key: or a certificates: list, not both")
            }
            certificates = try c.decode([CertificatePair].self, forKey: .certificates)
            certificatesListed = true
            if certificates.isEmpty {
                throw DecodingError.dataCorruptedError(forKey: .certificates, in: c, debugDescription: "expected at least one {cert, key}")
            }
        } else {
            guard c.contains(.cert) else {
                throw DecodingError.keyNotFound(CodingKeys.cert, .init(codingPath: c.codingPath,
                    debugDescription: "a TLS listener needs cert: and key: (or certificates:)"))
            }
            certificates = [CertificatePair(cert: try c.decode(String.self, forKey: .cert), key: try c.decode(String.self, forKey: .key))]
        }
        let version = try c.decode(.minVersion, default: minVersion.rawValue)
        guard let parsed = Version(rawValue: version) else {
            throw DecodingError.dataCorruptedError(forKey: .minVersion, in: c, debugDescription: "expected \"1.2\" or \"1.3\"; got '\(version)'")
        }
        minVersion = parsed
        alpn = try Self.decodeList(.alpn, in: c, default: alpn, allowed: Self.supportedProtocols,
                                   what: "a protocol this gateway speaks", item: "protocol")
        ciphers = try Self.decodeList(.ciphers, in: c, default: ciphers, allowed: Self.allowedCiphers,
                                      what: "a TLS 1.2 suite this gateway offers", item: "suite")
        clientCA = try c.decodeIfPresent(String.self, forKey: .clientCA)
        let auth = try c.decode(.clientAuth, default: clientAuth.rawValue)
        guard let parsedAuth = ClientAuth(rawValue: auth) else {
            throw DecodingError.dataCorruptedError(forKey: .clientAuth, in: c, debugDescription: "expected required or optional")
        }
        if c.contains(.clientAuth), clientCA == nil {
            throw DecodingError.dataCorruptedError(forKey: .clientAuth, in: c, debugDescription: "client_auth needs client_ca: (the CA that signs client certificates)")
        }
        clientAuth = parsedAuth
        handshakeTimeout = try c.decode(.handshakeTimeout, default: handshakeTimeout)
        if handshakeTimeout.nanoseconds <= 0 {
            throw DecodingError.dataCorruptedError(forKey: .handshakeTimeout, in: c, debugDescription: "must be positive")
        }
    }

    /// A non-empty list whose every entry is one of `allowed`; errors name the key.
    private static func decodeList(_ key: CodingKeys, in c: KeyedDecodingContainer<CodingKeys>, default value: [String],
                                   allowed: [String], what: String, item: String) throws -> [String] {
        let list = try c.decode(key, default: value)
        for name in list where !allowed.contains(name) {
            throw DecodingError.dataCorruptedError(forKey: key, in: c,
                debugDescription: "'\(name)' is not \(what) (\(allowed.joined(separator: ", ")))")
        }
        if list.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "expected at least one \(item)")
        }
        return list
    }
}
