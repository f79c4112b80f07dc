/// `retries:` — which failed requests may try another server, and how many.
public struct RetriesConfig: Decodable, Sendable {
    /// Further attempts per request (0 turns retries off).
    public var attempts = 2
    /// Retries may be at most this share of requests (over 10 s) ...
    public var budgetPercent = 20.0
    /// ... or this many per second, whichever is more.
    public var minPerSecond = 3

    enum CodingKeys: String, CodingKey, CaseIterable {
        case attempts
        case budgetPercent = "budget_percent"
        case minPerSecond = "min_per_second"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        attempts = try c.decode(.attempts, default: attempts)
        budgetPercent = try c.decode(.budgetPercent, default: budgetPercent)
        minPerSecond = try c.decode(.minPerSecond, default: minPerSecond)
        if attempts < 0 || attempts > 10 {
            throw DecodingError.dataCorruptedError(forKey: .attempts, in: c, debugDescription: "0...10")
        }
    }
}
