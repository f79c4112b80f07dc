/// `cors.NAME`: one CORS policy, referenced by routes.
public struct CORSConfig: Decodable, Sendable {
    public var allowOrigins: [String]
    public var allowMethods: [String]
    public var allowHeaders: [String]
    public var exposeHeaders: [String]
    public var allowCredentials: Bool
    public var maxAge: ConfigDuration?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case allowOrigins = "allow_origins"
        case allowMethods = "allow_methods"
        case allowHeaders = "allow_headers"
        case exposeHeaders = "expose_headers"
        case allowCredentials = "allow_credentials"
        case maxAge = "max_age"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allowOrigins = try c.decode([String].self, forKey: .allowOrigins)
        allowMethods = try c.decode(.allowMethods, default: ["GET", "HEAD", "POST"])
        allowHeaders = try c.decode(.allowHeaders, default: [])
        exposeHeaders = try c.decode(.exposeHeaders, default: [])
        allowCredentials = try c.decode(.allowCredentials, default: false)
        maxAge = try c.decodeIfPresent(ConfigDuration.self, forKey: .maxAge)
        if allowCredentials && (allowOrigins.contains("*") || allowHeaders.contains("*")) {
            throw decoder.invalidValue("'*' cannot be combined with allow_credentials: browsers refuse it")
        }
        if allowOrigins.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .allowOrigins, in: c, debugDescription: "list at least one origin")
        }
    }
}
