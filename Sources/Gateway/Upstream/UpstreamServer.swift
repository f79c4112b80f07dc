import NIOCore

/// One upstream server of one pool, as the data path needs it: one address (a host name with
/// several addresses is several servers).
final class UpstreamServer: Sendable {
    /// Index into every per-loop array of connection pools.
    let id: Int
    let poolName: String
    let url: UpstreamURL
    let address: SocketAddress
    let weight: Int
    let settings: UpstreamSettings
    /// `settings`' durations as `TimeAmount`s, converted once.
    let responseTimeout: TimeAmount
    let acquireTimeout: TimeAmount
    /// For `https://` servers: the pool's TLS context, and the name sent by SNI and checked in
    /// the certificate (nil: none sent, the certificate is checked against the address).
    let tls: UpstreamTLSMaterial?
    let tlsServerName: String?

    /// - Parameter resolvedFrom: when the URL names a host, the address it resolved to: the
    ///   server is then called `host:port@address` (one name may stand for several servers).
    init(id: Int, poolName: String, url: UpstreamURL, address: SocketAddress, weight: Int, settings: UpstreamSettings,
         tls: UpstreamTLSMaterial? = nil, resolvedFrom ip: String? = nil) {
        self.id = id
        self.poolName = poolName
        self.url = url
        self.address = address
        self.weight = weight
        self.settings = settings
        self.responseTimeout = settings.responseTimeout.timeAmount
        self.acquireTimeout = settings.queueTimeout.timeAmount + settings.connectTimeout.timeAmount
        self.authority = ip.map { "\(url.authority)@\($0)" } ?? url.authority
        self.tls = url.secure ? tls : nil
        self.tlsServerName = url.secure ? tls?.serverName(forHost: url.host) : nil
    }

    /// `host:port`, the server's name in metrics, logs and debug headers: made once, since the
    /// access log and debug headers ask for it on every request.
    let authority: String
}
