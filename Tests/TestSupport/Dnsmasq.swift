import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real DNS server on loopback: dnsmasq on a free port, answering only from a hosts directory
/// it watches (inotify), with 1 s TTLs, so a test rewrites the answers as a platform would move
/// a service. Started under the same watchdog as the other servers: a crashed test run leaves
/// nothing behind.
public final class Dnsmasq: @unchecked Sendable {
    public let port: Int
    public let directory: String

    public init() throws {
        port = try freePort()
        directory = NSTemporaryDirectory() + "gateway-dnsmasq-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory + "/hosts", withIntermediateDirectories: true)
        try setHosts([])
        let command = "/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --port=\(port) --listen-address=127.0.0.1 "
            + "--bind-interfaces --no-resolv --no-hosts --hostsdir=\(directory)/hosts --local-ttl=1 --user=root "
            + "--pid-file=\(directory)/pid"
        try startWatched(command, log: directory + "/log")
    }

    /// `IP:PORT`, as `dns.servers` takes it.
    public var server: String { "127.0.0.1:\(port)" }

    /// Replaces the answers with these `(address, name)` lines.
    public func setHosts(_ entries: [(String, String)]) throws {
        let text = entries.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
        try text.write(toFile: directory + "/hosts/entries", atomically: true, encoding: .utf8)
    }

    private var pid: Int32? {
        (try? String(contentsOfFile: directory + "/pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// SIGKILL (this process blocks SIGTERM, and its children inherit the mask), then waits
    /// until it is gone.
    public func stop() {
        guard let pid else { return }
        Glibc.kill(pid, SIGKILL)
        for _ in 0..<500 where Glibc.kill(pid, 0) == 0 { usleep(10_000) }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
