/// `outlier_detection:` — passive ejection of servers that keep failing requests.
public struct OutlierDetectionConfig: Decodable, Sendable {
    /// Consecutive 5xx answers or connection failures that eject a server; 0 turns it off.
    public var consecutiveErrors = 5
    public var baseEjectionTime = ConfigDuration.seconds(30)
    public var maxEjectionTime = ConfigDuration.seconds(300)
    public var maxEjectedPercent = 50

    enum CodingKeys: String, CodingKey, CaseIterable {
        case consecutiveErrors = "consecutive_errors"
        case baseEjectionTime = "base_ejection_time"
        case maxEjectionTime = "max_ejection_time"
        case maxEjectedPercent = "max_ejected_percent"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        consecutiveErrors = try c.decode(.consecutiveErrors, default: consecutiveErrors)
        baseEjectionTime = try c.decode(.baseEjectionTime, default: baseEjectionTime)
        maxEjectionTime = try c.decode(.maxEjectionTime, default: maxEjectionTime)
        maxEjectedPercent = try c.decode(.maxEjectedPercent, default: maxEjectedPercent)
        if !(0...100).contains(maxEjectedPercent) {
            throw DecodingError.dataCorruptedError(forKey: .maxEjectedPercent, in: c, debugDescription: "0...100")
        }
    }
}
