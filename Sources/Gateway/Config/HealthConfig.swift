/// `health:` — active checks of upstream servers and the databases' role and lag.
public struct HealthConfig: Decodable, Sendable, Equatable {
    /// HTTP path of the active check; nil turns active HTTP checks off.
    public var path: String?
    public var interval = ConfigDuration.seconds(2)
    public var timeout = ConfigDuration.seconds(1)
    public var rise = 2
    public var fall = 3
    /// Statuses counted as healthy (default 200–399, as HAProxy's httpchk).
    public var expectedStatuses: [ClosedRange<Int>] = [200...399]
    /// Each interval is shortened or lengthened by up to this fraction, so checks of many
    /// servers (and of many gateways) do not fall into step.
    public var jitter = 0.1
    /// A replica further behind than this gets no reads (then comes back under 80% of it).
    public var maxLag = ConfigDuration.seconds(5)
    public var maxLagBytes: ByteSize?
    /// How often each database is probed, and how long a probe may take.
    public var databaseInterval = ConfigDuration.seconds(1)
    public var databaseTimeout = ConfigDuration.seconds(2)
    /// Consecutive failed probes before a database counts as unreachable.
    public var databaseFall = 2

    enum CodingKeys: String, CodingKey, CaseIterable {
        case path, interval, timeout, rise, fall, jitter
        case expectedStatus = "expected_status"
        case maxLag = "max_lag"
        case maxLagBytes = "max_lag_bytes"
        case databaseInterval = "database_interval"
        case databaseTimeout = "database_timeout"
        case databaseFall = "database_fall"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        interval = try c.decode(.interval, default: interval)
        timeout = try c.decode(.timeout, default: timeout)
        rise = try c.decode(.rise, default: rise)
        fall = try c.decode(.fall, default: fall)
        jitter = try c.decode(.jitter, default: jitter)
        maxLag = try c.decode(.maxLag, default: maxLag)
        maxLagBytes = try c.decodeIfPresent(ByteSize.self, forKey: .maxLagBytes)
        databaseInterval = try c.decode(.databaseInterval, default: databaseInterval)
        databaseTimeout = try c.decode(.databaseTimeout, default: databaseTimeout)
        databaseFall = try c.decode(.databaseFall, default: databaseFall)
        if c.contains(.expectedStatus) {
            expectedStatuses = []
            for item in try c.decode([StatusSpec].self, forKey: .expectedStatus) { expectedStatuses.append(item.range) }
        }
        if let path, !path.hasPrefix("/") {
            throw DecodingError.dataCorruptedError(forKey: .path, in: c, debugDescription: "a path starts with '/'")
        }
        for (key, value) in [(CodingKeys.rise, rise), (.fall, fall), (.databaseFall, databaseFall)] where value < 1 {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be at least 1")
        }
        if !(0...0.5).contains(jitter) {
            throw DecodingError.dataCorruptedError(forKey: .jitter, in: c, debugDescription: "a fraction between 0 and 0.5")
        }
        if timeout >= interval {
            throw DecodingError.dataCorruptedError(forKey: .timeout, in: c, debugDescription: "must be shorter than interval (\(interval))")
        }
    }

    /// `200`, or `2xx`.
    struct StatusSpec: Decodable {
        let range: ClosedRange<Int>

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let code = try? c.decode(Int.self), (100...599).contains(code) {
                range = code...code
                return
            }
            let text = try c.decode(String.self)
            guard text.count == 3, text.hasSuffix("xx"), let hundreds = Int(text.prefix(1)), (1...5).contains(hundreds) else {
                throw decoder.invalidValue("expected a status such as 200 or a class such as 2xx; got '\(text)'")
            }
            range = hundreds * 100...hundreds * 100 + 99
        }
    }

    func isExpected(_ status: Int) -> Bool { expectedStatuses.contains { $0.contains(status) } }
}
