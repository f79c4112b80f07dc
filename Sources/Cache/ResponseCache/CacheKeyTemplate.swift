/// What a cache key is made from, for one request.
public protocol CacheKeyInputs {
    /// The route's `{name}` captures, in the order of the route pattern's parameters.
    func pathParameter(_ index: Int) -> Substring?
    /// The normalized path.
    var path: Substring { get }
    /// Everything after `?` in the request target (empty when none).
    var query: Substring { get }
    var host: String { get }
    func header(_ lowercasedName: String) -> String?
}

/// A cache key template such as `sub:{user}` or `{host}{path}?{query}`: literal text and
/// placeholders — `{name}` (a path parameter of the route), `{query.NAME}`, `{header.NAME}`,
/// `{path}`, `{query}` and `{host}` — compiled once and rendered per request.
public struct CacheKeyTemplate: Sendable, Equatable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case pathParameter(Int)
        case queryParameter(String)
        case header(String)
        case path
        case query
        case host
    }

    public struct TemplateError: Error, CustomStringConvertible {
        public var description: String
    }

    public let parts: [Part]
    public let text: String

    /// The key when a route names none: the request target on its host (nginx's default
    /// `$scheme$proxy_host$request_uri`, less the scheme: the gateway listens on one).
    public static let defaultText = "{host}{path}?{query}"

    /// - Parameter parameterNames: the route pattern's `{name}` parameters, in order.
    public init(_ text: String, parameterNames: [String]) throws(TemplateError) {
        self.text = text
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            literal += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw TemplateError(description: "unclosed '{' in key '\(text)'")
            }
            let name = String(rest[rest.index(after: open)..<close])
            if !literal.isEmpty {
                parts.append(.literal(literal))
                literal = ""
            }
            switch name {
            case "path": parts.append(.path)
            case "query": parts.append(.query)
            case "host": parts.append(.host)
            default:
                if name.hasPrefix("query."), name.count > 6 {
                    parts.append(.queryParameter(String(name.dropFirst(6))))
                } else if name.hasPrefix("header."), name.count > 7 {
                    parts.append(.header(String(name.dropFirst(7)).lowercased()))
                } else if let index = parameterNames.firstIndex(of: name) {
                    parts.append(.pathParameter(index))
                } else {
                    let known = parameterNames.isEmpty ? "the route has no {name} parameters" : "the route's parameters are " + parameterNames.map { "{\($0)}" }.joined(separator: ", ")
                    throw TemplateError(description: "unknown placeholder {\(name)} in key '\(text)': \(known); also {path}, {query}, {host}, {query.NAME}, {header.NAME}")
                }
            }
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    public var description: String { text }

    public func render(_ inputs: some CacheKeyInputs) -> String {
        var key = ""
        for part in parts {
            switch part {
            case .literal(let text): key += text
            case .pathParameter(let index): key += inputs.pathParameter(index) ?? ""
            case .queryParameter(let name): key += Self.queryValue(name, in: inputs.query) ?? ""
            case .header(let name): key += inputs.header(name) ?? ""
            case .path: key += inputs.path
            case .query: key += inputs.query
            case .host: key += inputs.host.lowercased()
            }
        }
        return key
    }

    /// The first `name=value` of a query string (the value as sent, not decoded).
    static func queryValue(_ name: String, in query: Substring) -> Substring? {
        for pair in query.split(separator: "&") {
            if let equals = pair.firstIndex(of: "=") {
                if pair[..<equals] == name { return pair[pair.index(after: equals)...] }
            } else if pair == name {
                return ""
            }
        }
        return nil
    }
}
