import NIOCore

/// One RESP reply, as hiredis's reader parsed it. Bulk strings stay bytes (`ByteBuffer`):
/// cached responses are binary.
public enum RedisValue: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk(ByteBuffer)
    /// A nil bulk string or nil array.
    case null
    case array([RedisValue])

    public var bytes: ByteBuffer? {
        if case .bulk(let buffer) = self { return buffer }
        return nil
    }

    /// A bulk string or status as text.
    public var string: String? {
        switch self {
        case .bulk(let buffer): String(buffer: buffer)
        case .status(let text): text
        default: nil
        }
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool { self == .null }
}

/// One argument of a command: text or bytes, both sent binary-safe.
public enum RedisArgument: Sendable, ExpressibleByStringInterpolation, ExpressibleByIntegerLiteral {
    case string(String)
    case bytes(ByteBuffer)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(stringInterpolation: DefaultStringInterpolation) { self = .string(String(stringInterpolation: stringInterpolation)) }
    public init(integerLiteral value: Int) { self = .string(String(value)) }
    public static func int(_ value: some BinaryInteger) -> RedisArgument { .string(String(value)) }

    var byteCount: Int {
        switch self {
        case .string(let text): text.utf8.count
        case .bytes(let buffer): buffer.readableBytes
        }
    }
}
