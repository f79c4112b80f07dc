import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` on a free loopback port with its own temporary directory. A small
/// shell watchdog ends it if this test process dies, so a crashed run leaves nothing behind.
public final class RedisServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public var url: String { "redis://127.0.0.1:\(port)/0" }
    /// A TLS port beside the cleartext one (`start(tls:)`), as managed Redis services offer.
    public let tlsPort: Int?
    public var tlsURL: String { "rediss://127.0.0.1:\(tlsPort ?? 0)/0" }

    private let extraArguments: [String]

    private init(port: Int, directory: String, extraArguments: [String], tlsPort: Int?) {
        self.port = port
        self.directory = directory
        self.extraArguments = extraArguments
        self.tlsPort = tlsPort
    }

    /// - Parameters:
    ///   - arguments: more redis-server options, e.g. `["--requirepass", "secret"]`.
    ///   - tls: a certificate and key (PEM): Redis also listens with TLS on `tlsPort`, not
    ///     asking clients for certificates.
    public static func start(arguments: [String] = [], tls: (cert: String, key: String)? = nil) async throws -> RedisServer {
        let directory = NSTemporaryDirectory() + "gateway-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var arguments = arguments
        var tlsPort: Int?
        if let tls {
            let port = try freePort()
            tlsPort = port
            arguments += ["--tls-port", String(port), "--tls-cert-file", tls.cert, "--tls-key-file", tls.key,
                          "--tls-ca-cert-file", tls.cert, "--tls-auth-clients", "no"]
        }
        let server = RedisServer(port: try freePort(), directory: directory, extraArguments: arguments, tlsPort: tlsPort)
        try await server.launch()
        return server
    }

    private var pidFile: String { directory + "/redis.pid" }

    /// Starts redis-server (again, on the same port, after `kill`).
    public func launch() async throws {
        try? FileManager.default.removeItem(atPath: pidFile)
        let redis = "redis-server --port \(port) --bind 127.0.0.1 --save '' --appendonly no --dir \(directory) --pidfile \(pidFile) --protected-mode no --loglevel warning " + extraArguments.map { "'\($0)'" }.joined(separator: " ")
        try startWatched(redis, log: directory + "/redis.log")
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if await ping() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestClientError("redis-server on port \(port) did not answer PING; log: \((try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8)) ?? "")")
    }

    /// The server's pid, from its pid file.
    public var pid: Int32? {
        (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Whether the process is alive (a killed server leaves its pid file behind).
    public var isAlive: Bool {
        guard let pid else { return false }
        return Glibc.kill(pid, 0) == 0
    }

    /// SIGKILL: Redis dies as in a crash (its watchdog follows).
    public func kill() async {
        if let pid { Glibc.kill(pid, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, await ping() {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// SIGSTOP / SIGCONT: Redis stops answering without closing connections (a hung server).
    public func pause() { if let pid { Glibc.kill(pid, SIGSTOP) } }
    public func resume() { if let pid { Glibc.kill(pid, SIGCONT) } }

    public func stop() async {
        // SIGKILL: this process blocks SIGTERM, and its children inherit the mask.
        if let pid { Glibc.kill(pid, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, await ping() {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs one command with redis-cli semantics on a fresh connection (test assertions).
    public func command(_ arguments: String...) async throws -> String {
        try await runProcess("/usr/bin/redis-cli", ["-p", String(port), "--raw"] + arguments)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func ping() async -> Bool {
        guard let client = try? await RawClient.connect(port: port, sending: "PING\r\n") else { return false }
        defer { Task { await client.close() } }
        let deadline = ContinuousClock.now + .milliseconds(500)
        while ContinuousClock.now < deadline {
            if client.receivedCount >= 7 { return true }
            if client.isClosed { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }
}
