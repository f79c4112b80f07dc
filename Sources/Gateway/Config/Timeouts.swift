/// Client-side timeouts, named after their nginx counterparts.
public struct Timeouts: Decodable, Sendable {
    /// From the first byte of a request until its whole head arrived; then 408.
    public var clientHeader = ConfigDuration.seconds(10)
    /// Between two reads of a request body; then 408.
    public var clientBody = ConfigDuration.seconds(60)
    /// An idle keep-alive connection is closed after this.
    public var keepalive = ConfigDuration.seconds(75)
    /// A client that reads nothing of its response for this long is disconnected.
    public var send = ConfigDuration.seconds(60)
    /// On shutdown, how long in-flight requests may take before connections are closed.
    public var drain = ConfigDuration.seconds(30)
    /// An upgraded connection (WebSocket) with no byte in either direction for this long is
    /// closed (HAProxy's `timeout tunnel`).
    public var tunnel = ConfigDuration.seconds(3600)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case clientHeader = "client_header"
        case clientBody = "client_body"
        case keepalive, send, drain, tunnel
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clientHeader = try c.decode(.clientHeader, default: clientHeader)
        clientBody = try c.decode(.clientBody, default: clientBody)
        keepalive = try c.decode(.keepalive, default: keepalive)
        send = try c.decode(.send, default: send)
        drain = try c.decode(.drain, default: drain)
        tunnel = try c.decode(.tunnel, default: tunnel)
        if tunnel.nanoseconds <= 0 {
            throw DecodingError.dataCorruptedError(forKey: .tunnel, in: c, debugDescription: "must be positive")
        }
    }
}
