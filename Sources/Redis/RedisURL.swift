/// Where Redis is, as redis-cli and most clients write it, in three topologies:
/// - `redis://[[user]:password@]host[:port][/db]` (`rediss://` for TLS): one server;
/// - `redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER[/db]`: the
///   sentinels (port 26379 by default) that know the current master of the set `MASTER`; the
///   credentials and database are the master's;
/// - `redis-cluster://[[user]:password@]host[:port][,host[:port]...]` (`rediss-cluster://` for
///   TLS): seed nodes of a Redis Cluster, from which the slot map is read.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public enum Topology: Sendable, Equatable {
        case standalone
        /// The name of the master set the sentinels watch.
        case sentinel(master: String)
        case cluster
    }

    public var topology: Topology
    /// The server; the sentinels; or the cluster's seed nodes. Never empty.
    public var endpoints: [RedisEndpoint]
    public var user: String?
    public var password: String?
    public var database: Int
    /// `rediss://`: TLS (managed Redis services require it).
    public var tls: Bool

    /// The first endpoint (the server of a standalone URL).
    public var host: String { endpoints[0].host }
    public var port: Int { endpoints[0].port }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    private static let schemes: [(prefix: String, topology: Topology, tls: Bool)] = [
        ("redis://", .standalone, false), ("rediss://", .standalone, true),
        ("redis-sentinel://", .sentinel(master: ""), false),
        ("redis-cluster://", .cluster, false), ("rediss-cluster://", .cluster, true),
    ]

    public init(_ text: String) throws {
        guard let scheme = Self.schemes.first(where: { text.hasPrefix($0.prefix) }) else {
            throw ParseError(description: "expected redis://[[user]:password@]host[:port][/db] (rediss:// for TLS), "
                + "redis-sentinel://host[:port][,host[:port]...]/MASTER or redis-cluster://host[:port][,host[:port]...], got '\(text)'")
        }
        tls = scheme.tls
        var rest = Substring(text.dropFirst(scheme.prefix.count))
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
        let defaultPort = if case .sentinel = scheme.topology { 26379 } else { 6379 }
        endpoints = try rest.split(separator: ",", omittingEmptySubsequences: false).map {
            try Self.endpoint($0, defaultPort: defaultPort, in: text)
        }
        if case .standalone = scheme.topology, endpoints.count > 1 {
            throw ParseError(description: "redis:// names one server; use redis-sentinel:// or redis-cluster:// for several, in '\(text)'")
        }
        var pathParts = path.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "/", omittingEmptySubsequences: false) } ?? []
        switch scheme.topology {
        case .sentinel:
            guard let master = pathParts.first, !master.isEmpty else {
                throw ParseError(description: "redis-sentinel:// needs the master set's name as its path (/mymaster), in '\(text)'")
            }
            topology = .sentinel(master: String(master))
            pathParts.removeFirst()
        case .cluster:
            topology = .cluster
            if pathParts.contains(where: { !$0.isEmpty }) {
                throw ParseError(description: "Redis Cluster has database 0 only: no /db in '\(text)'")
            }
            pathParts = []
        case .standalone:
            topology = .standalone
        }
        let databaseText = pathParts.first ?? ""
        if databaseText.isEmpty {
            database = 0
        } else {
            guard pathParts.count == 1, let database = Int(databaseText), database >= 0 else {
                throw ParseError(description: "bad database number '\(pathParts.joined(separator: "/"))' in '\(text)'")
            }
            self.database = database
        }
    }

    private static func endpoint(_ text: Substring, defaultPort: Int, in url: String) throws -> RedisEndpoint {
        var rest = text
        let host: String
        let port: Int
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ParseError(description: "unclosed '[' in '\(url)'") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let value = Int(rest.dropFirst()), (1...65535).contains(value) else { throw ParseError(description: "bad port in '\(url)'") }
                port = value
            } else {
                port = defaultPort
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let value = Int(rest[rest.index(after: colon)...]), (1...65535).contains(value) else {
                throw ParseError(description: "bad port in '\(url)'")
            }
            port = value
        } else {
            host = String(rest)
            port = defaultPort
        }
        guard !host.isEmpty else { throw ParseError(description: "no host in '\(url)'") }
        return RedisEndpoint(host: host, port: port)
    }

    /// Without the password.
    public var description: String {
        let credentials = password == nil ? "" : "\(user ?? ""):***@"
        let hosts = endpoints.map(\.description).joined(separator: ",")
        switch topology {
        case .standalone: return "\(tls ? "rediss" : "redis")://\(credentials)\(hosts)/\(database)"
        case .sentinel(let master): return "redis-sentinel://\(credentials)\(hosts)/\(master)/\(database)"
        case .cluster: return "\(tls ? "rediss-cluster" : "redis-cluster")://\(credentials)\(hosts)"
        }
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
