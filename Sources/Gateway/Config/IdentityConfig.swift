/// `identity:` — who a request comes from, for per-user cache entries and read-your-writes
/// tokens kept per identity: the first source in the list that the request has.
public enum IdentitySource: Sendable, Equatable, CustomStringConvertible {
    case cookie(String)
    /// Lowercased name.
    case header(String)
    case ip
    /// A claim of the request's verified JWT (`jwt:sub`, SimpleJWT's `jwt:user_id`): the user
    /// across token refreshes. Only on routes where auth verifies the token.
    case claim(String)

    public static let defaults: [IdentitySource] = [.cookie("session"), .header("authorization"), .ip]

    init(_ text: String) throws(ParseError) {
        if text == "ip" {
            self = .ip
            return
        }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { throw ParseError(text: text) }
        switch parts[0] {
        case "cookie": self = .cookie(parts[1])
        case "header": self = .header(parts[1].lowercased())
        case "jwt": self = .claim(parts[1])
        default: throw ParseError(text: text)
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        var text: String
        var description: String { "each source is jwt:CLAIM, cookie:NAME, header:NAME or ip; got '\(text)'" }
    }

    public var description: String {
        switch self {
        case .cookie(let name): "cookie:\(name)"
        case .header(let name): "header:\(name)"
        case .ip: "ip"
        case .claim(let name): "jwt:\(name)"
        }
    }

    static func decodeList(_ values: [String], codingPath: [any CodingKey]) throws -> [IdentitySource] {
        guard !values.isEmpty else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "name at least one source (e.g. [ip])"))
        }
        return try values.map { text in
            do { return try IdentitySource(text) } catch {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(error)"))
            }
        }
    }
}
