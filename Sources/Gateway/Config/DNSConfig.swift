import Router

#if canImport(Glibc)
import Glibc
#endif

/// `dns:` — how upstream host names are looked up and how often again. Every address a name
/// has becomes a server of its pool; the answer is followed as it changes (platforms move API
/// servers: containers, managed services, an RDS endpoint after a failover).
public struct DNSConfig: Decodable, Sendable, Equatable {
    /// DNS servers to ask, `IP` or `IP:PORT` (empty: those of /etc/resolv.conf, which is also
    /// read again at every lookup).
    public var servers: [String] = []
    /// How often names are looked up again; a record TTL that is shorter wins (down to 1 s).
    /// A pool's `resolve:` overrides it.
    public var resolve = ConfigDuration.seconds(30)
    /// One query's timeout; each server is tried `tries` times.
    public var timeout = ConfigDuration.seconds(2)
    public var tries = 2
    /// Which addresses of a name become servers.
    public var family = Family.any

    public enum Family: String, Decodable, Sendable {
        case any, ipv4, ipv6
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case servers, resolve, timeout, tries, family
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        servers = try c.decode(.servers, default: servers)
        for server in servers where !Self.isServerAddress(server) {
            throw DecodingError.dataCorruptedError(forKey: .servers, in: c, debugDescription: "expected IP or IP:PORT; got '\(server)'")
        }
        resolve = try c.decode(.resolve, default: resolve)
        timeout = try c.decode(.timeout, default: timeout)
        tries = try c.decode(.tries, default: tries)
        let familyName = try c.decode(.family, default: family.rawValue)
        guard let family = Family(rawValue: familyName) else {
            throw DecodingError.dataCorruptedError(forKey: .family, in: c, debugDescription: "expected any, ipv4 or ipv6; got '\(familyName)'")
        }
        self.family = family
        if resolve < .seconds(1) {
            throw DecodingError.dataCorruptedError(forKey: .resolve, in: c, debugDescription: "at least 1s")
        }
        if timeout < .milliseconds(10) || timeout > .seconds(30) {
            throw DecodingError.dataCorruptedError(forKey: .timeout, in: c, debugDescription: "expected 10ms...30s")
        }
        if !(1...10).contains(tries) {
            throw DecodingError.dataCorruptedError(forKey: .tries, in: c, debugDescription: "expected 1...10")
        }
    }

    /// `10.0.0.2`, `10.0.0.2:5353`, `[fd00::2]:53` or `fd00::2`, as c-ares takes them.
    static func isServerAddress(_ text: String) -> Bool {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return false }
            let rest = text[text.index(after: close)...]
            return IPAddress(String(text[text.index(after: text.startIndex)..<close])) != nil
                && (rest.isEmpty || (rest.hasPrefix(":") && Int(rest.dropFirst()).map { (1...65535).contains($0) } == true))
        }
        if IPAddress(text) != nil { return true }
        let parts = text.split(separator: ":")
        return parts.count == 2 && IPAddress(String(parts[0])) != nil && Int(parts[1]).map { (1...65535).contains($0) } == true
    }

    var resolver: DNSResolver {
        DNSResolver(servers: servers, timeoutMilliseconds: Int(timeout.nanoseconds / 1_000_000), tries: tries,
                    family: family == .ipv4 ? AF_INET : family == .ipv6 ? AF_INET6 : AF_UNSPEC)
    }
}
