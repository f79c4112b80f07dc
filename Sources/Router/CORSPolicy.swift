/// A CORS policy for a group of routes (the sample domain runs a web and a mobile backend with
/// different origins on one API). The gateway answers preflights itself and decorates actual
/// responses; a disallowed origin gets no CORS headers at all, which is how a browser is told no.
public struct CORSPolicy: Sendable {
    public let name: String
    /// Exact origins, `*` (any, not with credentials), or `https://*.example.com`.
    public let allowOrigins: [String]
    public let allowMethods: [RequestMethod]
    /// Lowercased; `*` allows any requested header (not with credentials).
    public let allowHeaders: [String]
    public let exposeHeaders: [String]
    public let allowCredentials: Bool
    public let maxAgeSeconds: Int?

    public init(name: String, allowOrigins: [String], allowMethods: [RequestMethod], allowHeaders: [String],
                exposeHeaders: [String], allowCredentials: Bool, maxAgeSeconds: Int?) {
        self.name = name
        self.allowOrigins = allowOrigins
        self.allowMethods = allowMethods
        self.allowHeaders = allowHeaders.map { $0.lowercased() }
        self.exposeHeaders = exposeHeaders
        self.allowCredentials = allowCredentials
        self.maxAgeSeconds = maxAgeSeconds
    }

    public func allows(origin: String) -> Bool {
        for allowed in allowOrigins {
            if allowed == "*" || allowed == origin { return true }
            // `https://*.example.com`: the scheme, then any subdomain of the domain.
            let parts = allowed.split(separator: "*", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0].hasSuffix("://"), parts[1].hasPrefix("."),
               origin.hasPrefix(parts[0]), origin.hasSuffix(parts[1]),
               origin.count > parts[0].count + parts[1].count {
                return true
            }
        }
        return false
    }

    /// The value of Access-Control-Allow-Origin for an allowed origin: `*` only when any origin
    /// is allowed and no credentials are involved; otherwise the origin itself (with Vary: Origin).
    private func allowOriginValue(_ origin: String) -> String {
        allowOrigins.contains("*") && !allowCredentials ? "*" : origin
    }

    public enum PreflightResult: Equatable {
        /// Answer 204 with these headers.
        case allowed([(String, String)])
        /// Answer 204 without CORS headers: the browser refuses the actual request.
        case refused

        public static func == (lhs: PreflightResult, rhs: PreflightResult) -> Bool {
            switch (lhs, rhs) {
            case (.refused, .refused): true
            case (.allowed(let a), .allowed(let b)): a.map { "\($0.0):\($0.1)" } == b.map { "\($0.0):\($0.1)" }
            default: false
            }
        }
    }

    /// A preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    public func preflight(origin: String, requestMethod: String, requestHeaders: String?) -> PreflightResult {
        guard allows(origin: origin) else { return .refused }
        let method = RequestMethod(requestMethod)
        guard allowMethods.contains(method) || method == .get || method == .head else { return .refused }
        let requested = (requestHeaders ?? "").split(separator: ",").map { $0.trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
        if !allowHeaders.contains("*") {
            for header in requested where !allowHeaders.contains(header) && !Self.safelisted.contains(header) {
                return .refused
            }
        }
        var headers: [(String, String)] = [("Access-Control-Allow-Origin", allowOriginValue(origin))]
        if allowCredentials { headers.append(("Access-Control-Allow-Credentials", "true")) }
        headers.append(("Access-Control-Allow-Methods", allowMethods.map(\.description).joined(separator: ", ")))
        if !requested.isEmpty {
            headers.append(("Access-Control-Allow-Headers", requested.joined(separator: ", ")))
        }
        if let maxAgeSeconds { headers.append(("Access-Control-Max-Age", String(maxAgeSeconds))) }
        headers.append(("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"))
        return .allowed(headers)
    }

    /// Headers for the response to an actual (non-preflight) cross-origin request.
    public func responseHeaders(origin: String) -> [(String, String)] {
        guard allows(origin: origin) else { return [] }
        var headers: [(String, String)] = [("Access-Control-Allow-Origin", allowOriginValue(origin))]
        if allowCredentials { headers.append(("Access-Control-Allow-Credentials", "true")) }
        if !exposeHeaders.isEmpty { headers.append(("Access-Control-Expose-Headers", exposeHeaders.joined(separator: ", "))) }
        headers.append(("Vary", "Origin"))
        return headers
    }

    /// Request headers a browser sends without asking (CORS-safelisted).
    static let safelisted: Set<String> = ["accept", "accept-language", "content-language", "content-type", "range"]
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice = slice.dropFirst() }
        while slice.last == " " || slice.last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
