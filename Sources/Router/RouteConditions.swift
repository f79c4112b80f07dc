/// Read access to a request's header fields, whatever represents them.
public protocol RequestHeaders {
    /// The first value of the field, by case-insensitive name.
    func firstValue(named name: String) -> String?
}

/// `api.example.com`, or `*.example.com` for any subdomain; case-insensitive, port ignored.
public struct HostPattern: Hashable, Sendable, CustomStringConvertible {
    public let pattern: String
    private let suffix: String?

    public init(_ pattern: String) {
        self.pattern = pattern.lowercased()
        suffix = self.pattern.hasPrefix("*.") ? String(self.pattern.dropFirst(1)) : nil
    }

    public func matches(_ host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            if let close = name.firstIndex(of: "]") { name = name[...close] }
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        if let suffix { return name.hasSuffix(suffix) && name.count > suffix.count }
        return name == pattern
    }

    public var description: String { pattern }
}

/// A header a route requires: present (`value == nil`) or with exactly this value.
public struct HeaderCondition: Hashable, Sendable {
    public let name: String
    public let value: String?

    public init(name: String, value: String?) {
        self.name = name
        self.value = value
    }
}

/// What a route requires of a request besides its path.
public struct RouteConditions: Sendable {
    /// nil: any method.
    public var methods: MethodSet?
    /// Empty: any host.
    public var hosts: [HostPattern]
    public var headers: [HeaderCondition]

    public init(methods: Set<RequestMethod>? = nil, hosts: [HostPattern] = [], headers: [HeaderCondition] = []) {
        self.methods = methods.map(MethodSet.init)
        self.hosts = hosts
        self.headers = headers
    }

    @inline(__always)
    func matches(method: RequestMethod, host: String?, headers requestHeaders: some RequestHeaders) -> Bool {
        if let methods, !methods.contains(method) { return false }
        if !hosts.isEmpty {
            guard let host, hosts.contains(where: { $0.matches(host) }) else { return false }
        }
        for condition in headers {
            guard let value = requestHeaders.firstValue(named: condition.name) else { return false }
            if let expected = condition.value, value != expected { return false }
        }
        return true
    }
}
