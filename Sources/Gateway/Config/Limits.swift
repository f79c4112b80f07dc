/// Bounds on what a client may send.
public struct Limits: Decodable, Sendable {
    /// The whole request head (start line and fields); larger gets 431.
    public var maxHeaderSize = ByteSize(32 * 1024)
    public var maxHeaders = 100
    /// The request body; larger gets 413 (nginx `client_max_body_size`).
    public var maxBodySize = ByteSize(10 * 1024 * 1024)
    /// Request bodies up to this size are read whole before an upstream is chosen (a malformed
    /// or abandoned one then never reaches an upstream, and a request that could not connect
    /// can be sent elsewhere body and all); larger ones stream. 0 streams every body.
    /// nginx's `client_body_buffer_size` (8–16 KiB).
    public var requestBuffering = ByteSize(16 * 1024)

    /// The largest response head the gateway parses (an upstream's, or its own answer re-read as
    /// an HTTP/2 stream's frames): upstreams send bigger heads than clients (cookies, CSP).
    var maxResponseHeadBytes: Int { max(maxHeaderSize.bytes * 2, 64 * 1024) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxHeaderSize = "max_header_size"
        case maxHeaders = "max_headers"
        case maxBodySize = "max_body_size"
        case requestBuffering = "request_buffering"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxHeaderSize = try c.decode(.maxHeaderSize, default: maxHeaderSize)
        maxHeaders = try c.decode(.maxHeaders, default: maxHeaders)
        maxBodySize = try c.decode(.maxBodySize, default: maxBodySize)
        requestBuffering = try c.decode(.requestBuffering, default: requestBuffering)
        if maxHeaderSize.bytes < 256 {
            throw DecodingError.dataCorruptedError(forKey: .maxHeaderSize, in: c, debugDescription: "must be at least 256 bytes")
        }
        if maxHeaders < 1 {
            throw DecodingError.dataCorruptedError(forKey: .maxHeaders, in: c, debugDescription: "must be at least 1")
        }
    }
}
