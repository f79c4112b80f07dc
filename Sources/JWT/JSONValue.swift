import Foundation

/// A JSON value as a JWT carries it: claims are kept as they came, and read as text where a
/// header or an identity needs one.
public enum JSONValue: Sendable, Equatable, Decodable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    public init(from decoder: any Decoder) throws {
        // In the order claims usually are (strings, then times): each failed attempt costs a
        // thrown DecodingError, the most expensive part of reading a token's claims.
        let c = try decoder.singleValueContainer()
        if let value = try? c.decode(String.self) {
            self = .string(value)
        } else if let value = try? c.decode(Int64.self) {
            self = .integer(value)
        } else if c.decodeNil() {
            self = .null
        } else if let value = try? c.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? c.decode(Double.self) {
            self = .number(value)
        } else if let value = try? c.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    /// The value as text: a string as is, a number or boolean as JSON writes it, a list of
    /// scalars joined by commas; nil for objects and null.
    public var text: String? {
        switch self {
        case .string(let value): value
        case .integer(let value): String(value)
        case .number(let value): value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .bool(let value): value ? "true" : "false"
        case .array(let values):
            values.allSatisfy { if case .array = $0 { false } else if case .object = $0 { false } else { true } }
                ? values.compactMap(\.text).joined(separator: ",") : nil
        case .object, .null: nil
        }
    }

    /// Seconds since the epoch (exp, nbf, iat), whole or not.
    var seconds: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }
}
