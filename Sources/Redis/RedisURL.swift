/// `redis://[[user]:password@]host[:port][/db]`, as redis-cli and most clients take it.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var database: Int
    /// `rediss://`: TLS (managed Redis services require it).
    public var tls: Bool

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ text: String) throws {
        tls = text.hasPrefix("rediss://")
        guard tls || text.hasPrefix("redis://") else {
            throw ParseError(description: "expected redis://[[user]:password@]host[:port][/db] (or rediss:// for TLS), got '\(text)'")
        }
        var rest = Substring(text.dropFirst(tls ? "rediss://".count : "redis://".count))
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                self.user = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                // redis://password@host is what many deployments write.
                password = Self.percentDecoded(credentials)
            }
        }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ParseError(description: "unclosed '[' in '\(text)'") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let port = Int(rest.dropFirst()), (1...65535).contains(port) else { throw ParseError(description: "bad port in '\(text)'") }
                self.port = port
            } else {
                port = 6379
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
                throw ParseError(description: "bad port in '\(text)'")
            }
            self.port = port
        } else {
            host = String(rest)
            port = 6379
        }
        guard !host.isEmpty else { throw ParseError(description: "no host in '\(text)'") }
        let databaseText = path.split(separator: "?", maxSplits: 1).first ?? ""
        if databaseText.isEmpty {
            database = 0
        } else {
            guard let database = Int(databaseText), database >= 0 else { throw ParseError(description: "bad database number '\(databaseText)' in '\(text)'") }
            self.database = database
        }
    }

    /// Without the password.
    public var description: String {
        let credentials = password == nil ? "" : "\(user ?? ""):***@"
        let hostText = host.contains(":") ? "[\(host)]" : host
        return "\(tls ? "rediss" : "redis")://\(credentials)\(hostText):\(port)/\(database)"
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.first {
            iterator = iterator.dropFirst()
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
