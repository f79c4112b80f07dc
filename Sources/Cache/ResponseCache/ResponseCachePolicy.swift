/// A route's caching rules, in the units the data path uses.
public struct ResponseCachePolicy: Sendable {
    /// The freshness of responses that say nothing about theirs (`ttl`); nil with
    /// `ttl: origin`, where only the origin's own headers (or RFC 9111's heuristic) count.
    public var ttlMilliseconds: Int64?
    /// `ttl: origin`: a general HTTP cache in front of an origin that sends caching headers.
    public var followsOrigin: Bool { ttlMilliseconds == nil }
    /// The operator's ceiling on serving stale (nil: not set: the origin's directives decide,
    /// and with `ttl:` an origin that says nothing gets none).
    public var staleWhileRevalidateMilliseconds: Int64?
    public var staleIfErrorMilliseconds: Int64?
    public var maxBody: Int
    /// One entry for every caller; otherwise one per identity.
    public var shared: Bool
    public var statuses: Set<Int>
    public var key: CacheKeyTemplate

    public init(ttlMilliseconds: Int64?, staleWhileRevalidateMilliseconds: Int64?, staleIfErrorMilliseconds: Int64?, maxBody: Int,
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

/// Whether an upstream response may be stored, and for how long (RFC 9111 §3 and §4.2 for a
/// shared cache, RFC 5861 for serving stale), with the route's policy as the operator's default
/// (`ttl`) and ceiling (`stale_while_revalidate`, `stale_if_error`).
public enum CacheAdmission {
    public struct Response: Sendable {
        public var status: Int
        /// The directives this cache acts on: the gateway-targeted field, else
        /// `CDN-Cache-Control` (RFC 9213), else `Cache-Control`.
        public var cacheControl: CacheControl
        public var hasSetCookie: Bool
        /// Lowercased names from `Vary`.
        public var vary: [String]
        public var contentLength: Int?
        /// `Age` in seconds (the first member of a list; nil when absent or invalid).
        public var age: Int64?
        public var date: String?
        /// nil: no `Expires`.
        public var expires: String?
        public var lastModified: String?
        /// An `ETag` or `Last-Modified`: the response can be revalidated.
        public var hasValidator: Bool
        /// The request carried `Authorization` (RFC 9111 §3.5).
        public var requestHadAuthorization: Bool

        public init(status: Int, cacheControl: CacheControl, hasSetCookie: Bool, vary: [String], contentLength: Int?, age: Int64?,
                    date: String? = nil, expires: String? = nil, lastModified: String? = nil, hasValidator: Bool = false,
                    requestHadAuthorization: Bool = false) {
            self.status = status
            self.cacheControl = cacheControl
            self.hasSetCookie = hasSetCookie
            self.vary = vary
            self.contentLength = contentLength
            self.age = age
            self.date = date
            self.expires = expires
            self.lastModified = lastModified
            self.hasValidator = hasValidator
            self.requestHadAuthorization = requestHadAuthorization
        }
    }

    /// How long a stored response is fresh, and how it may be used after.
    public struct Lifetimes: Sendable, Equatable {
        public var freshMilliseconds: Int64
        public var staleWhileRevalidateMilliseconds: Int64
        public var staleIfErrorMilliseconds: Int64
        /// `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`: never served stale,
        /// whatever the route allows.
        public var mustRevalidate: Bool
        /// On a shared route, may answer requests that carry `Authorization` (`public`,
        /// `s-maxage`, `must-revalidate`).
        public var authorizedUse: Bool

        public init(freshMilliseconds: Int64, staleWhileRevalidateMilliseconds: Int64, staleIfErrorMilliseconds: Int64,
                    mustRevalidate: Bool, authorizedUse: Bool) {
            self.freshMilliseconds = freshMilliseconds
            self.staleWhileRevalidateMilliseconds = staleWhileRevalidateMilliseconds
            self.staleIfErrorMilliseconds = staleIfErrorMilliseconds
            self.mustRevalidate = mustRevalidate
            self.authorizedUse = authorizedUse
        }
    }

    public enum Decision: Sendable, Equatable {
        case store(Lifetimes)
        /// Why not (for the debug log).
        case refuse(String)
    }

    /// Statuses a cache may give heuristic freshness (RFC 9110 §15.1).
    static let heuristicallyCacheable: Set<Int> = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]

    /// - Parameter now: Unix seconds at receipt (for an `Expires` without a usable `Date`).
    public static func decide(_ response: Response, policy: ResponseCachePolicy, now: Int64) -> Decision {
        guard policy.statuses.contains(response.status) else { return .refuse("status \(response.status)") }
        let control = response.cacheControl
        if control.noStore { return .refuse("no-store") }
        // A private response may be kept for its own user only.
        if control.isPrivate && policy.shared { return .refuse("private on a shared route") }
        // A response that sets a cookie belongs to one client and one moment.
        if response.hasSetCookie { return .refuse("Set-Cookie") }
        if response.vary.contains("*") { return .refuse("Vary: *") }
        if let length = response.contentLength, length > policy.maxBody { return .refuse("larger than max_body") }
        let authorizedUse = control.isPublic || control.sMaxAge != nil || control.mustRevalidate
        if response.requestHadAuthorization && policy.shared && !authorizedUse {
            return .refuse("a shared entry from a request with Authorization needs public, s-maxage or must-revalidate")
        }
        let date = response.date.flatMap(HTTPDate.parse) ?? now
        // The origin's own lifetime wins over the route's: s-maxage (meant for shared caches),
        // else max-age, else Expires (an invalid Expires is already expired).
        var lifetime: Int64?
        if let seconds = control.sMaxAge ?? control.maxAge {
            lifetime = Int64(seconds) * 1000
        } else if let expires = response.expires {
            lifetime = HTTPDate.parse(expires).map { max(0, $0 - date) * 1000 } ?? 0
        } else if let ttl = policy.ttlMilliseconds {
            lifetime = ttl
        } else if heuristicallyCacheable.contains(response.status) || control.isPublic,
                  let modified = response.lastModified.flatMap(HTTPDate.parse), modified < date {
            // RFC 9111 §4.2.2: a tenth of the time since it last changed, at most a day.
            lifetime = min(86_400_000, (date - modified) * 100)
        }
        let mustRevalidate = control.mustRevalidate || control.proxyRevalidate || control.sMaxAge != nil || control.noCache
        // no-cache: stored, but every use is revalidated first.
        if control.noCache { lifetime = 0 }
        guard let origin = lifetime ?? (response.hasValidator ? 0 : nil) else { return .refuse("no freshness and no validator") }
        let fresh = origin - (response.age ?? 0) * 1000
        func stale(_ directive: Int?, _ route: Int64?) -> Int64 {
            if mustRevalidate { return 0 }
            if let directive { return min(route ?? .max, Int64(directive) * 1000) }
            return policy.followsOrigin ? 0 : route ?? 0
        }
        let lifetimes = Lifetimes(
            freshMilliseconds: max(0, fresh),
            staleWhileRevalidateMilliseconds: stale(control.staleWhileRevalidate, policy.staleWhileRevalidateMilliseconds),
            staleIfErrorMilliseconds: stale(control.staleIfError, policy.staleIfErrorMilliseconds),
            mustRevalidate: mustRevalidate, authorizedUse: authorizedUse)
        if fresh <= 0 && lifetimes.staleWhileRevalidateMilliseconds <= 0 && lifetimes.staleIfErrorMilliseconds <= 0 && !response.hasValidator {
            return .refuse("already stale")
        }
        return .store(lifetimes)
    }
}
