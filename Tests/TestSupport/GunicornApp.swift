import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real gunicorn (Debian's, with its defaults: gthread worker, 2 s keep-alive) serving a tiny
/// WSGI app on a free loopback port: every request, any method, gets 200, the number of
/// requests its worker has served and the scheme it was served over (gunicorn terminates TLS
/// itself with `--certfile`/`--keyfile`, as API servers on managed platforms do). The server of the deployments this gateway fronts, for the
/// behaviours that depend on how it handles connections. A shell watchdog ends it if this test
/// process dies.
public final class GunicornApp: @unchecked Sendable {
    public let port: Int
    public let directory: String
    /// Serves HTTPS (started with `--certfile`).
    public let secure: Bool
    public var url: String { "\(secure ? "https" : "http")://127.0.0.1:\(port)" }

    static let app = """
        import itertools
        served = itertools.count(1)

        def app(environ, start_response):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length:
                environ["wsgi.input"].read(length)
            body = ('{"served": %d, "scheme": "%s"}' % (next(served), environ["wsgi.url_scheme"])).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        """

    private init(port: Int, directory: String, secure: Bool) {
        self.port = port
        self.directory = directory
        self.secure = secure
    }

    /// - Parameter arguments: more gunicorn options (its defaults otherwise).
    public static func start(arguments: [String] = []) async throws -> GunicornApp {
        let directory = NSTemporaryDirectory() + "gateway-gunicorn-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try app.write(toFile: directory + "/app.py", atomically: true, encoding: .utf8)
        let server = GunicornApp(port: try freePort(), directory: directory, secure: arguments.contains("--certfile"))
        let gunicorn = "cd \(directory) && exec gunicorn --worker-class gthread --threads 4 --workers 1 --bind 127.0.0.1:\(server.port) "
            + "--pid \(directory)/gunicorn.pid " + arguments.map { "'\($0)'" }.joined(separator: " ") + " app:app"
        try startWatched(gunicorn, log: "\(directory)/gunicorn.log")
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if server.secure {
                // Listening is enough: what a TLS client gets is the test's business.
                if let client = try? await RawClient.connect(port: server.port) {
                    await client.close()
                    return server
                }
            } else if let response = try? await RawClient.request("GET", server.url + "/ready", timeout: .seconds(1)), response.status == 200 {
                return server
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestClientError("gunicorn on port \(server.port) did not start; log: \((try? String(contentsOfFile: directory + "/gunicorn.log", encoding: .utf8)) ?? "")")
    }

    public var pid: Int32? {
        (try? String(contentsOfFile: directory + "/gunicorn.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    public func stop() async {
        // SIGKILL: this process blocks SIGTERM, and its children inherit the mask.
        if let pid { Glibc.kill(pid, SIGKILL) }
        try? await Task.sleep(for: .milliseconds(100))
        try? FileManager.default.removeItem(atPath: directory)
    }
}
