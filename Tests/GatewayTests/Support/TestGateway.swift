import Logging
import NIOConcurrencyHelpers
import TestSupport

@testable import Gateway

/// Captures log lines so tests can assert on the access log.
final class LogCapture: @unchecked Sendable {
    private let lines = NIOLockedValueBox<[(message: String, metadata: Logger.Metadata)]>([])

    var entries: [(message: String, metadata: Logger.Metadata)] { lines.withLockedValue { $0 } }

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in CapturingHandler(capture: self) }
    }

    fileprivate func append(_ message: String, _ metadata: Logger.Metadata) {
        lines.withLockedValue { $0.append((message, metadata)) }
    }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.append(event.message.description, event.metadata ?? [:])
        }
    }
}

/// A gateway started in-process on free ports from a YAML config (with `{{NAME}}` placeholders
/// replaced by the given values).
final class TestGateway: @unchecked Sendable {
    let server: GatewayServer
    let proxyPort: Int
    let adminPort: Int
    let accessLog = LogCapture()

    static func start(_ yaml: String, _ substitutions: [String: String] = [:]) async throws -> TestGateway {
        var text = yaml
        for (key, value) in substitutions { text = text.replacingOccurrences(of: "{{\(key)}}", with: value) }
        let config = try ConfigLoader.parse(yaml: text, file: "test.yaml")
        return try await TestGateway(config: config)
    }

    private init(config: GatewayConfig) async throws {
        let capture = accessLog
        server = try GatewayServer(
            config: config, logger: Logger(label: "gateway") { _ in SwiftLogNoOpLogHandler() },
            accessLogger: capture.logger("access"))
        let bound = try await server.start()
        proxyPort = bound.proxyPort
        adminPort = bound.adminPort
    }

    func stop() async {
        await server.shutdown()
    }

    func client(sending initial: String? = nil) async throws -> RawClient {
        try await RawClient.connect(port: proxyPort, sending: initial)
    }

    /// One request on a new connection.
    func request(_ method: String = "GET", _ target: String, headers: [String] = [], body: String? = nil) async throws -> TestResponse {
        let client = try await client()
        defer { Task { await client.close() } }
        var text = "\(method) \(target) HTTP/1.1\r\nHost: gateway.test\r\n"
        for header in headers { text += header + "\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        try await client.send(text)
        return try await client.readResponse(head: method == "HEAD")
    }

    func admin(_ path: String, token: String? = nil) async throws -> TestResponse {
        let client = try await RawClient.connect(port: adminPort)
        defer { Task { await client.close() } }
        var text = "GET \(path) HTTP/1.1\r\nHost: admin\r\n"
        if let token { text += "Authorization: Bearer \(token)\r\n" }
        try await client.send(text + "\r\n")
        return try await client.readResponse()
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

/// Runs `body` with one upstream and a gateway in front of it; both stop afterwards, also when
/// the body throws.
func withGateway(
    _ extraYAML: String = "", upstreamName: String = "upstream",
    _ body: (TestGateway, TestUpstream) async throws -> Void
) async throws {
    let upstream = TestUpstream(name: upstreamName)
    try await upstream.start()
    let gateway: TestGateway
    do {
        gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 1
            pools:
              primary: { role: primary, servers: [{{UPSTREAM}}] }
            \(extraYAML)
            """, ["UPSTREAM": upstream.url])
    } catch {
        await upstream.stop()
        throw error
    }
    do {
        try await body(gateway, upstream)
    } catch {
        await gateway.stop()
        await upstream.stop()
        throw error
    }
    await gateway.stop()
    await upstream.stop()
}

/// The error a config made of `base` and `yaml` gets (nil when it loads).
func configError(addingTo base: String, _ yaml: String) -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(yaml: base + yaml, file: "test.yaml")
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        return nil
    }
}
