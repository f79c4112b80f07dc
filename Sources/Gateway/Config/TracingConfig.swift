/// `tracing:` — W3C Trace Context (`traceparent`). A request's trace is continued when it
/// carries a valid `traceparent` (the trace id and flags kept, the gateway's own span id as the
/// new parent) or started (a new trace id) when it does not; the upstream gets the header and
/// the access log the trace id, so a request can be followed from client to API.
public struct TracingConfig: Decodable, Sendable, Equatable {
    /// false: `traceparent` and `tracestate` pass through untouched and nothing is started.
    public var enabled = true
    /// The sampled flag of traces the gateway starts (a continued trace keeps the client's):
    /// true asks the API's tracer to record them (OpenTelemetry's default parent-based sampler
    /// follows it).
    public var sampled = true

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, sampled
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decode(.enabled, default: enabled)
        sampled = try c.decode(.sampled, default: sampled)
    }
}
