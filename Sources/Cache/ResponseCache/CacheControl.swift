import Router

/// The `Cache-Control` directives a shared cache acts on (RFC 9111 §5.2), parsed from a
/// request's or a response's header.
public struct CacheControl: Sendable, Equatable {
    public var noStore = false
    public var noCache = false
    /// `private` (with or without field names: either way, never shared).
    public var isPrivate = false
    public var isPublic = false
    public var maxAge: Int?
    public var sMaxAge: Int?
    public var mustRevalidate = false
    public var proxyRevalidate = false
    /// RFC 5861: how long the response may be served stale while it is refreshed, or when
    /// its origin fails.
    public var staleWhileRevalidate: Int?
    public var staleIfError: Int?

    public init() {}

    public init(_ header: String?) {
        guard let header else { return }
        for item in header.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            let name = parts[0].trimmingSpaces().lowercased()
            var value = parts.count > 1 ? parts[1].trimmingSpaces() : nil
            if let quoted = value, quoted.count >= 2, quoted.hasPrefix("\""), quoted.hasSuffix("\"") {
                value = String(quoted.dropFirst().dropLast())
            }
            switch name {
            case "no-store": noStore = true
            case "no-cache": noCache = true
            case "private": isPrivate = true
            case "public": isPublic = true
            // A malformed age is taken as 0, as RFC 9111 §1.2.2 asks (stale rather than fresh).
            case "max-age": maxAge = value.flatMap { Int($0) }.map { max(0, $0) } ?? 0
            case "s-maxage": sMaxAge = value.flatMap { Int($0) }.map { max(0, $0) } ?? 0
            case "must-revalidate": mustRevalidate = true
            case "proxy-revalidate": proxyRevalidate = true
            // A malformed one grants nothing.
            case "stale-while-revalidate": staleWhileRevalidate = value.flatMap { Int($0) }.map { max(0, $0) } ?? 0
            case "stale-if-error": staleIfError = value.flatMap { Int($0) }.map { max(0, $0) } ?? 0
            default: break
            }
        }
    }
}
