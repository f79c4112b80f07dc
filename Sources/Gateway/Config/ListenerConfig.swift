/// One entry of `listen:`. A bare address (`0.0.0.0:8080`) is a cleartext listener; a mapping
/// adds TLS (`tls:`) or makes it a cleartext listener that only redirects to HTTPS
/// (`redirect_https:`), as nginx's `return 301 https://$host$request_uri` server does.
public struct ListenerConfig: Decodable, Sendable {
    public var address: ListenAddress
    public var tls: TLSListenerConfig?
    /// The HTTPS port every request of this listener is redirected to (443 is left out of the
    /// Location). nil: an ordinary listener.
    public var redirectHTTPS: Int?
    /// HTTP/2 settings and limits (by ALPN on TLS, by prior knowledge with `h2c: true`).
    public var http2 = HTTP2Config()
    /// The certificates and keys of `tls`, read by the loader (`GatewayConfig.loadTLS`).
    public internal(set) var material: TLSServerMaterial?
    /// Where this listener is in the file, for errors found after decoding.
    var configPath: [ConfigPathComponent] = ["listen"]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case address, tls, http2
        case redirectHTTPS = "redirect_https"
    }

    public init(address: ListenAddress, tls: TLSListenerConfig? = nil, redirectHTTPS: Int? = nil) {
        self.address = address
        self.tls = tls
        self.redirectHTTPS = redirectHTTPS
    }

    public init(from decoder: any Decoder) throws {
        guard (try? decoder.container(keyedBy: AnyCodingKey.self)) != nil else {
            self.init(address: try ListenAddress(from: decoder))
            return
        }
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let tls = try c.decodeIfPresent(TLSListenerConfig.self, forKey: .tls)
        let redirect = try c.decodeIfPresent(Int.self, forKey: .redirectHTTPS)
        if let port = redirect, !(1...65535).contains(port) {
            throw DecodingError.dataCorruptedError(forKey: .redirectHTTPS, in: c, debugDescription: "expected the HTTPS port, 1...65535")
        }
        if redirect != nil, tls != nil {
            throw DecodingError.dataCorruptedError(forKey: .redirectHTTPS, in: c,
                debugDescription: "a listener either serves TLS or redirects to it, not both")
        }
        let http2 = try c.decode(.http2, default: HTTP2Config())
        if http2.h2c, tls != nil {
            throw DecodingError.dataCorruptedError(forKey: .http2, in: c,
                debugDescription: "h2c is cleartext HTTP/2; a TLS listener offers h2 through ALPN (tls.alpn)")
        }
        if http2.h2c, redirect != nil {
            throw DecodingError.dataCorruptedError(forKey: .http2, in: c,
                debugDescription: "a redirect_https listener only redirects; h2c belongs on a listener that serves")
        }
        self.init(address: try c.decode(ListenAddress.self, forKey: .address), tls: tls, redirectHTTPS: redirect)
        self.http2 = http2
        configPath = decoder.codingPath.map(ConfigPathComponent.init)
    }

    /// `listen:` as one listener (an address or a mapping) or a list of them.
    static func decodeList(from decoder: any Decoder) throws -> [ListenerConfig] {
        if var list = try? decoder.unkeyedContainer() {
            var listeners: [ListenerConfig] = []
            while !list.isAtEnd { listeners.append(try list.decode(ListenerConfig.self)) }
            guard !listeners.isEmpty else { throw decoder.invalidValue("expected at least one listener") }
            return listeners
        }
        return [try ListenerConfig(from: decoder)]
    }
}

/// `listen: [...]` decoded through `ListenerConfig.decodeList`.
struct ListenerList: Decodable {
    var listeners: [ListenerConfig]
    init(from decoder: any Decoder) throws { listeners = try ListenerConfig.decodeList(from: decoder) }
}
