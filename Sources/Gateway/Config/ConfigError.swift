/// A configuration problem, located: the file, the line and column, and the key path
/// (`pools.primary.servers[0]`), so an operator can go straight to it.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// Dotted path of the offending key, empty for the whole file.
    public var key: String
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String {
        var location = file
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return key.isEmpty ? "\(location): \(message)" : "\(location): \(key): \(message)"
    }
}

/// A semantic error found after decoding, with the path of the key it is about; the loader
/// turns it into a located `ConfigError`.
struct ConfigValidationError: Error {
    var path: [ConfigPathComponent]
    var message: String

    init(_ path: [ConfigPathComponent], _ message: String) {
        self.path = path
        self.message = message
    }
}

/// One step of a key path: a mapping key or a sequence index.
enum ConfigPathComponent: Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case key(String)
    case index(Int)

    init(stringLiteral value: String) { self = .key(value) }
    init(integerLiteral value: Int) { self = .index(value) }

    init(_ codingKey: any CodingKey) {
        if let index = codingKey.intValue, codingKey.stringValue.hasPrefix("Index ") || codingKey.stringValue == "\(index)" {
            self = .index(index)
        } else {
            self = .key(codingKey.stringValue)
        }
    }

    static func render(_ path: [ConfigPathComponent]) -> String {
        var text = ""
        for component in path {
            switch component {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }
}
