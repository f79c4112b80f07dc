/// `http2:` of a listener. A TLS listener speaks HTTP/2 to clients that choose `h2` by ALPN (it
/// is offered first by default); a cleartext listener speaks it only with `h2c: true`, to
/// clients that start with the HTTP/2 preface (prior knowledge), next to HTTP/1.1 on the same
/// port. Every limit has a safe default; each is counted in metrics when it bites.
public struct HTTP2Config: Decodable, Sendable, Equatable {
    /// Cleartext HTTP/2 by prior knowledge (cleartext listeners only; off by default, as in nginx).
    public var h2c = false
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once.
    public var maxConcurrentStreams = 128
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a larger header block gets 431 (see `headerListBytes`).
    /// nil, or more than `limits.max_header_size`: that.
    public var maxHeaderListSize: ByteSize?
    /// Each stream's receive window (request bodies): what a client may send before the
    /// gateway has passed it upstream.
    public var streamWindow = ByteSize(64 * 1024)
    /// The connection's receive window, over all streams.
    public var connectionWindow = ByteSize(1024 * 1024)
    /// Rapid reset (CVE-2023-44487): more RST_STREAM frames than this from a client within
    /// `reset_interval` and the connection gets GOAWAY (ENHANCE_YOUR_CALM).
    public var maxResets = 200
    public var resetInterval = ConfigDuration.seconds(30)
    /// CONTINUATION flood (CVE-2024-27316): a header block in more frames than this ends the
    /// connection.
    public var maxContinuationFrames = 5
    /// PING, SETTINGS and PRIORITY frames a client may send within `control_frame_interval`.
    public var maxControlFrames = 200
    public var controlFrameInterval = ConfigDuration.seconds(30)
    /// A connection with no open stream for this long is closed with GOAWAY. nil:
    /// `timeouts.keepalive`.
    public var idleTimeout: ConfigDuration?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case h2c
        case maxConcurrentStreams = "max_concurrent_streams"
        case maxHeaderListSize = "max_header_list_size"
        case streamWindow = "stream_window"
        case connectionWindow = "connection_window"
        case maxResets = "max_resets"
        case resetInterval = "reset_interval"
        case maxContinuationFrames = "max_continuation_frames"
        case maxControlFrames = "max_control_frames"
        case controlFrameInterval = "control_frame_interval"
        case idleTimeout = "idle_timeout"
    }

    public init() {}

    /// The header list bound in force: `max_header_list_size`, never above `limits.max_header_size`
    /// (what the SETTINGS announce is what a stream's parser enforces).
    func headerListBytes(_ limits: Limits) -> Int {
        min(limits.maxHeaderSize.bytes, maxHeaderListSize?.bytes ?? .max)
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        h2c = try c.decode(.h2c, default: h2c)
        maxConcurrentStreams = try c.decode(.maxConcurrentStreams, default: maxConcurrentStreams)
        maxHeaderListSize = try c.decodeIfPresent(ByteSize.self, forKey: .maxHeaderListSize)
        streamWindow = try c.decode(.streamWindow, default: streamWindow)
        connectionWindow = try c.decode(.connectionWindow, default: connectionWindow)
        maxResets = try c.decode(.maxResets, default: maxResets)
        resetInterval = try c.decode(.resetInterval, default: resetInterval)
        maxContinuationFrames = try c.decode(.maxContinuationFrames, default: maxContinuationFrames)
        maxControlFrames = try c.decode(.maxControlFrames, default: maxControlFrames)
        controlFrameInterval = try c.decode(.controlFrameInterval, default: controlFrameInterval)
        idleTimeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .idleTimeout)

        func positive(_ value: Int, _ key: CodingKeys, max: Int = Int(Int32.max)) throws {
            guard (1...max).contains(value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "expected 1...\(max); got \(value)")
            }
        }
        try positive(maxConcurrentStreams, .maxConcurrentStreams)
        try positive(maxResets, .maxResets)
        try positive(maxContinuationFrames, .maxContinuationFrames)
        try positive(maxControlFrames, .maxControlFrames)
        // RFC 9113 §6.9.2: a window above 2^31-1 is a flow-control error.
        try positive(streamWindow.bytes, .streamWindow)
        try positive(connectionWindow.bytes, .connectionWindow)
        if let size = maxHeaderListSize { try positive(size.bytes, .maxHeaderListSize) }
        for (value, key) in [(resetInterval, CodingKeys.resetInterval), (controlFrameInterval, .controlFrameInterval)]
            where value.nanoseconds <= 0 {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be positive")
        }
        if let idle = idleTimeout, idle.nanoseconds <= 0 {
            throw DecodingError.dataCorruptedError(forKey: .idleTimeout, in: c, debugDescription: "must be positive")
        }
    }
}
