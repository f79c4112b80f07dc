/// `consistency:` — read-your-writes: a client's reads after its own write see that write.
public struct ConsistencyConfig: Decodable, Sendable {
    public enum Mode: String, Decodable, Sendable, CaseIterable {
        case none
        /// After a write, the client's reads go to the primary for `sticky_for`.
        case time
        /// After a write, the client's reads go only to replicas that replayed its WAL position.
        case lsn
    }

    public enum Store: String, Decodable, Sendable, CaseIterable {
        /// Tokens travel only with the client (cookie, header).
        case none
        /// Also kept per identity (top-level `identity:`) in this gateway's memory.
        case local
        /// Also kept per identity in Redis (`redis:`), for every gateway instance: a client
        /// without cookies keeps read-your-writes on any of them.
        case redis
    }

    public var mode = Mode.none
    public var stickyFor = ConfigDuration.seconds(2)
    public var maxWait = ConfigDuration.milliseconds(150)
    public var tokenTTL = ConfigDuration.seconds(30)
    /// HMAC key shared by every gateway instance.
    public var secret: String?
    public var cookie = "gw_consistency"
    public var header = "X-Gateway-Consistency-Token"
    /// A response header in which the API returns the WAL position of its write.
    public var lsnHeader: String?
    public var store = Store.local
    public var cookieSecure = false

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, secret, cookie, header, store
        case stickyFor = "sticky_for"
        case maxWait = "max_wait"
        case tokenTTL = "token_ttl"
        case lsnHeader = "lsn_header"
        case cookieSecure = "cookie_secure"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let modeName = try c.decode(.mode, default: "none")
        guard let mode = Mode(rawValue: modeName) else {
            throw DecodingError.dataCorruptedError(forKey: .mode, in: c, debugDescription: "expected none, time or lsn; got '\(modeName)'")
        }
        self.mode = mode
        stickyFor = try c.decode(.stickyFor, default: stickyFor)
        maxWait = try c.decode(.maxWait, default: maxWait)
        tokenTTL = try c.decode(.tokenTTL, default: tokenTTL)
        secret = try c.decodeIfPresent(String.self, forKey: .secret)
        cookie = try c.decode(.cookie, default: cookie)
        header = try c.decode(.header, default: header)
        lsnHeader = try c.decodeIfPresent(String.self, forKey: .lsnHeader)
        cookieSecure = try c.decode(.cookieSecure, default: false)
        let storeName = try c.decode(.store, default: "local")
        guard let store = Store(rawValue: storeName) else {
            throw DecodingError.dataCorruptedError(forKey: .store, in: c, debugDescription: "expected none, local or redis; got '\(storeName)'")
        }
        self.store = store
        if mode != .none, (secret ?? "").utf8.count < 16 {
            throw DecodingError.dataCorruptedError(forKey: .secret, in: c,
                debugDescription: "time and lsn modes sign tokens: set a secret of at least 16 characters, the same on every instance")
        }
        if tokenTTL < stickyFor {
            throw DecodingError.dataCorruptedError(forKey: .tokenTTL, in: c, debugDescription: "must be at least sticky_for")
        }
    }
}
