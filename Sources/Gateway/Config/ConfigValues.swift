import NIOCore
import Router

/// A duration written the way operators write them: `150ms`, `2s`, `15m`, `1h`, `1d`, or a
/// bare number of seconds.
public struct ConfigDuration: Decodable, Equatable, Comparable, Sendable, CustomStringConvertible {
    public var duration: Duration

    public init(_ duration: Duration) { self.duration = duration }

    public static func seconds(_ value: Int64) -> ConfigDuration { .init(.seconds(value)) }
    public static func milliseconds(_ value: Int64) -> ConfigDuration { .init(.milliseconds(value)) }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            guard seconds >= 0 else { throw decoder.invalidValue("a duration cannot be negative") }
            duration = .nanoseconds(Int64(seconds * 1e9))
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = Self.parse(text) else {
            throw decoder.invalidValue("expected a duration such as 150ms, 2s, 15m, 1h; got '\(text)'")
        }
        duration = parsed
    }

    static func parse(_ text: String) -> Duration? {
        let text = text.trimmed(" ")
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number >= 0 else { return nil }
            return .nanoseconds(Int64((number * scale * 1e9).rounded()))
        }
        guard let seconds = Double(text), seconds >= 0 else { return nil }
        return .nanoseconds(Int64(seconds * 1e9))
    }

    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    public var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }

    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public static func < (lhs: ConfigDuration, rhs: ConfigDuration) -> Bool { lhs.duration < rhs.duration }

    public var description: String {
        let ns = nanoseconds
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        return "\(ns / 1_000_000)ms"
    }
}

/// A size in bytes: a number, or with a binary unit (`k`/`KiB`/`KB` = 1024, `m`, `g`), as
/// nginx reads `client_max_body_size`.
public struct ByteSize: Decodable, Equatable, Comparable, Sendable {
    public var bytes: Int

    public init(_ bytes: Int) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            guard number >= 0 else { throw decoder.invalidValue("a size cannot be negative") }
            bytes = number
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = Self.parse(text) else {
            throw decoder.invalidValue("expected a size such as 512, 64k, 10MiB; got '\(text)'")
        }
        bytes = parsed
    }

    static func parse(_ text: String) -> Int? {
        let lower = text.lowercased().trimmed(" ")
        let units: [(String, Int)] = [
            ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30),
            ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30),
            ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1),
        ]
        for (suffix, scale) in units where lower.hasSuffix(suffix) {
            guard let number = Double(String(lower.dropLast(suffix.count)).trimmed(" ")), number >= 0 else {
                return nil
            }
            return Int(number * Double(scale))
        }
        return Int(lower).flatMap { $0 >= 0 ? $0 : nil }
    }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }
}

/// Where a listener binds: `HOST:PORT`, `[IPv6]:PORT`, `:PORT` (every interface) or `PORT`.
public struct ListenAddress: Decodable, Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let port = try? container.decode(Int.self) {
            guard (0...65535).contains(port) else { throw decoder.invalidValue("port \(port) is out of range") }
            self.init(host: "0.0.0.0", port: port)
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = Self.parse(text) else {
            throw decoder.invalidValue("expected HOST:PORT such as 0.0.0.0:8080 or [::1]:8080; got '\(text)'")
        }
        self = parsed
    }

    public static func parse(_ text: String) -> ListenAddress? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        } else {
            host = ""
            portText = Substring(text)
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return ListenAddress(host: host.isEmpty ? "0.0.0.0" : String(host), port: port)
    }

    /// Whether only this machine can reach the listener.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        return CIDRBlock("127.0.0.0/8")!.contains(address) || address == IPAddress("::1")!
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// An upstream server: `http://HOST:PORT` (the port defaults to 80).
public struct UpstreamURL: Decodable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `https://`: the connection speaks TLS (the pool's `tls:` says how it verifies).
    public var secure: Bool

    public init(host: String, port: Int, secure: Bool = false) {
        self.host = host
        self.port = port
        self.secure = secure
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = Self.parse(text) else {
            throw decoder.invalidValue("expected an upstream URL such as http://10.0.0.1:8000 or https://api.internal; got '\(text)'")
        }
        self = parsed
    }

    public static func parse(_ text: String) -> UpstreamURL? {
        let lowered = text.lowercased()
        let secure = lowered.hasPrefix("https://")
        guard secure || lowered.hasPrefix("http://") else { return nil }
        var rest = text.dropFirst(secure ? 8 : 7)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@") else { return nil }
        if rest.contains(":") || rest.hasPrefix("[") {
            return ListenAddress.parse(String(rest)).map { UpstreamURL(host: $0.host, port: $0.port, secure: secure) }
        }
        return UpstreamURL(host: String(rest), port: secure ? 443 : 80, secure: secure)
    }

    public var description: String {
        (secure ? "https://" : "http://") + authority
    }

    /// `host:port`, as servers are named in metrics, logs and debug headers.
    public var authority: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

extension KeyedDecodingContainer {
    /// A list of CIDR blocks (`10.0.0.0/8`, `::1`), each checked.
    func decodeCIDRs(_ key: Key) throws -> [CIDRBlock] {
        guard contains(key) else { return [] }
        var list = try nestedUnkeyedContainer(forKey: key)
        var blocks: [CIDRBlock] = []
        while !list.isAtEnd {
            let text = try list.decode(String.self)
            guard let block = CIDRBlock(text) else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: codingPath + [key, AnyCodingKey(intValue: list.currentIndex - 1)],
                    debugDescription: "expected an address or CIDR block such as 10.0.0.0/8; got '\(text)'"))
            }
            blocks.append(block)
        }
        return blocks
    }
}

extension String {
    func trimmed(_ character: Character) -> String {
        var slice = Substring(self)
        while slice.first == character { slice = slice.dropFirst() }
        while slice.last == character { slice = slice.dropLast() }
        return String(slice)
    }
}
