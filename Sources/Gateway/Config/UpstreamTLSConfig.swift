import Router

/// `tls:` of a pool: how the gateway talks TLS to the pool's `https://` servers. Without it,
/// `https://` servers are verified against the system trust store with the URL's host as SNI
/// and expected name (nginx `proxy_ssl_verify on` with `proxy_ssl_server_name on`).
public struct UpstreamTLSConfig: Decodable, Sendable, Equatable {
    /// CA certificates (PEM) that sign the servers' certificates; nil: the system trust store.
    public var caFile: String?
    /// false: any certificate is accepted (a warning is logged at start). Only when written out.
    public var verify = true
    /// The name sent by SNI and expected in the certificate; nil: the URL's host (no SNI for an
    /// IP address, whose certificate must then name the IP).
    public var sni: String?
    /// A client certificate (chain, leaf first) and its key, for upstreams that require mTLS.
    public var cert: String?
    public var key: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case verify, sni, cert, key
        case caFile = "ca_file"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        verify = try c.decode(.verify, default: verify)
        sni = try c.decodeIfPresent(String.self, forKey: .sni)
        cert = try c.decodeIfPresent(String.self, forKey: .cert)
        key = try c.decodeIfPresent(String.self, forKey: .key)
        if (cert == nil) != (key == nil) {
            throw DecodingError.dataCorruptedError(forKey: cert == nil ? .key : .cert, in: c,
                debugDescription: "a client certificate needs both cert: and key:")
        }
        if let sni, sni.isEmpty || IPAddress(sni) != nil || sni.contains(where: { $0 == " " || $0 == "/" || $0 == ":" }) {
            throw DecodingError.dataCorruptedError(forKey: .sni, in: c, debugDescription: "expected a DNS name; got '\(sni)'")
        }
        if !verify, caFile != nil {
            throw DecodingError.dataCorruptedError(forKey: .verify, in: c,
                debugDescription: "verify: false ignores ca_file: keep one of them")
        }
    }
}
