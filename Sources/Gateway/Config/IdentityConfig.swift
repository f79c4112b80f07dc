/// `identity:` — who a request comes from, for per-user cache entries and read-your-writes
/// tokens kept per identity: the first source in the list that the request has.
public enum IdentitySource: Sendable, Equatable, CustomStringConvertible {
    case cookie(String)
    /// Lowercased name.
    case header(String)
    case ip

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
        default: throw ParseError(text: text)
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        var text: String
        var description: String { "each source is cookie:NAME, header:NAME or ip; got '\(text)'" }
    }

    public var description: String {
        switch self {
        case .cookie(let name): "cookie:\(name)"
        case .header(let name): "header:\(name)"
        case .ip: "ip"
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
