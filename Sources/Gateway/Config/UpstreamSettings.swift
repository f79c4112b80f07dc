/// How the gateway talks to upstream servers; every pool may override these.
public struct UpstreamSettings: Decodable, Sendable, Equatable {
    /// Time to establish a TCP connection; then 504.
    public var connectTimeout = ConfigDuration.seconds(2)
    /// Time to wait for the response head, and between two reads of its body; then 504.
    public var responseTimeout = ConfigDuration.seconds(60)
    /// Idle keep-alive connections to an upstream are closed after this, and never reused past
    /// it. It must stay below the upstream's own keep-alive timeout, or a request can go out on
    /// a connection the upstream is closing (and a write then fails): gunicorn closes idle
    /// connections after 2 s, Node and uvicorn after 5 s. An upstream's `Keep-Alive: timeout=N`
    /// shortens it further for that connection.
    public var idleTimeout = ConfigDuration.milliseconds(1500)
    /// Connections to one server, over all event loops; requests beyond wait in a queue.
    public var maxConnections = 1024
    /// How long a request may wait for a connection when a server is at `max_connections`.
    public var queueTimeout = ConfigDuration.seconds(5)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case connectTimeout = "connect_timeout"
        case responseTimeout = "response_timeout"
        case idleTimeout = "idle_timeout"
        case maxConnections = "max_connections"
        case queueTimeout = "queue_timeout"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try self.init(from: decoder, defaults: UpstreamSettings())
    }

    init(from decoder: any Decoder, defaults: UpstreamSettings) throws {
        self = defaults
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        connectTimeout = try c.decode(.connectTimeout, default: connectTimeout)
        responseTimeout = try c.decode(.responseTimeout, default: responseTimeout)
        idleTimeout = try c.decode(.idleTimeout, default: idleTimeout)
        maxConnections = try c.decode(.maxConnections, default: maxConnections)
        queueTimeout = try c.decode(.queueTimeout, default: queueTimeout)
        if maxConnections < 1 {
            throw DecodingError.dataCorruptedError(forKey: .maxConnections, in: c, debugDescription: "must be at least 1")
        }
    }
}
