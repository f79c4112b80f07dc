/// A route's caching rules, in the units the data path uses.
public struct ResponseCachePolicy: Sendable {
    public var ttlMilliseconds: Int64
    public var staleWhileRevalidateMilliseconds: Int64
    public var staleIfErrorMilliseconds: Int64
    public var maxBody: Int
    /// One entry for every caller; otherwise one per identity.
    public var shared: Bool
    public var statuses: Set<Int>
    public var key: CacheKeyTemplate

    public init(ttlMilliseconds: Int64, staleWhileRevalidateMilliseconds: Int64, staleIfErrorMilliseconds: Int64, maxBody: Int,
                shared: Bool, statuses: Set<Int>, key: CacheKeyTemplate) {
        self.ttlMilliseconds = ttlMilliseconds
        self.staleWhileRevalidateMilliseconds = staleWhileRevalidateMilliseconds
        self.staleIfErrorMilliseconds = staleIfErrorMilliseconds
        self.maxBody = maxBody
        self.shared = shared
        self.statuses = statuses
        self.key = key
    }
}

/// Whether an upstream response may be stored, and for how long (RFC 9111 §3 for a shared
/// cache, with the route's policy as the default freshness).
public enum CacheAdmission {
    public struct Response: Sendable {
        public var status: Int
        public var cacheControl: CacheControl
        public var hasSetCookie: Bool
        /// Lowercased names from `Vary`.
        public var vary: [String]
        public var contentLength: Int?
        public var age: Int64?

        public init(status: Int, cacheControl: CacheControl, hasSetCookie: Bool, vary: [String], contentLength: Int?, age: Int64?) {
            self.status = status
            self.cacheControl = cacheControl
            self.hasSetCookie = hasSetCookie
            self.vary = vary
            self.contentLength = contentLength
            self.age = age
        }
    }

    public enum Decision: Sendable, Equatable {
        case store(ttlMilliseconds: Int64)
        /// Why not (for the debug log).
        case refuse(String)
    }

    public static func decide(_ response: Response, policy: ResponseCachePolicy) -> Decision {
        guard policy.statuses.contains(response.status) else { return .refuse("status \(response.status)") }
        let control = response.cacheControl
        if control.noStore { return .refuse("no-store") }
        if control.noCache { return .refuse("no-cache") }
        // A private response may be kept for its own user only.
        if control.isPrivate && policy.shared { return .refuse("private on a shared route") }
        // A response that sets a cookie belongs to one client and one moment.
        if response.hasSetCookie { return .refuse("Set-Cookie") }
        if response.vary.contains("*") { return .refuse("Vary: *") }
        if let length = response.contentLength, length > policy.maxBody { return .refuse("larger than max_body") }
        // The origin's own lifetime wins over the route's: s-maxage (meant for shared caches),
        // else max-age; its Age has already used part of it.
        var ttl = policy.ttlMilliseconds
        if let seconds = control.sMaxAge ?? control.maxAge {
            ttl = Int64(seconds) * 1000
        }
        ttl -= (response.age ?? 0) * 1000
        if ttl <= 0 && policy.staleWhileRevalidateMilliseconds <= 0 && policy.staleIfErrorMilliseconds <= 0 {
            return .refuse("already stale")
        }
        return .store(ttlMilliseconds: max(0, ttl))
    }
}
