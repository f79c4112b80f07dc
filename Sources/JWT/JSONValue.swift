import Foundation

/// A JSON value as a JWT carries it: claims are kept as they came, and read as text where a
/// header or an identity needs one.
public enum JSONValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    /// A value `JSONSerialization` parsed (a third of the cost of decoding an enum like this one
    /// with `JSONDecoder`, whose failed attempts each throw). Booleans are told from numbers by their
    /// Objective-C type, as Foundation keeps both as NSNumber.
    init?(foundation value: Any) {
        switch value {
        case let string as String:
            self = .string(string)
        case let number as NSNumber:
            let type = String(cString: number.objCType)
            if type == "c" || type == "B" {
                self = .bool(number.boolValue)
            } else if type == "d" || type == "f" {
                self = .number(number.doubleValue)
            } else {
                self = .integer(number.int64Value)
            }
        case let array as [Any]:
            var values: [JSONValue] = []
            values.reserveCapacity(array.count)
            for element in array {
                guard let value = JSONValue(foundation: element) else { return nil }
                values.append(value)
            }
            self = .array(values)
        case let object as [String: Any]:
            guard let values = JSONValue.object(foundation: object) else { return nil }
            self = .object(values)
        case is NSNull:
            self = .null
        default:
            return nil
        }
    }

    /// A JSON object's members; nil if any is not a JSON value.
    static func object(foundation object: [String: Any]) -> [String: JSONValue]? {
        var values: [String: JSONValue] = [:]
        values.reserveCapacity(object.count)
        for (key, element) in object {
            guard let value = JSONValue(foundation: element) else { return nil }
            values[key] = value
        }
        return values
    }

    /// The members of the JSON object in `bytes`; nil when it is not one.
    static func parseObject(_ bytes: [UInt8]) -> [String: JSONValue]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        return Self.object(foundation: object)
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
