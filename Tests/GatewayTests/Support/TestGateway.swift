import Logging
import NIOConcurrencyHelpers
import NIOCore
import TestSupport

@testable import Gateway

/// Captures log lines so tests can assert on the access log: as the gateway's access log output
/// it receives the real logfmt bytes and parses them back into fields (so the format itself is
/// under test); as a Logger it records other loggers' events.
final class LogCapture: AccessLogOutput, @unchecked Sendable {
    private let lines = NIOLockedValueBox<[(message: String, metadata: Logger.Metadata)]>([])
    private let rawBytes = NIOLockedValueBox<[UInt8]>([])
    /// Hands over what the gateway's loops still buffer before `entries` is read.
    var flushGateway: @Sendable () -> Void = {}

    var entries: [(message: String, metadata: Logger.Metadata)] {
        flushGateway()
        return lines.withLockedValue { $0 }
    }

    /// Every access log byte received, lines as written.
    var raw: String {
        flushGateway()
        return String(decoding: rawBytes.withLockedValue { $0 }, as: UTF8.self)
    }

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in CapturingHandler(capture: self) }
    }

    fileprivate func append(_ message: String, _ metadata: Logger.Metadata) {
        lines.withLockedValue { $0.append((message, metadata)) }
    }

    var batches: Int { batchCount.withLockedValue { $0 } }
    private let batchCount = NIOLockedValueBox(0)

    func write(_ buffer: ByteBuffer, lines count: Int) {
        let bytes = Array(buffer.readableBytesView)
        rawBytes.withLockedValue { $0 += bytes }
        batchCount.withLockedValue { $0 += 1 }
        let text = String(decoding: bytes, as: UTF8.self)
        let parsed = text.split(separator: "\n").map(Self.parse)
        precondition(parsed.count == count, "a batch said \(count) lines and held \(parsed.count)")
        for fields in parsed {
            var metadata = Logger.Metadata()
            for (key, value) in fields where !["ts", "level", "logger", "msg"].contains(key) {
                metadata[key] = .string(value)
            }
            append(fields.first { $0.key == "msg" }?.value ?? "", metadata)
        }
    }

    var droppedLines: Int { 0 }

    /// One logfmt line's `key=value` pairs, quoted values unescaped.
    static func parse(_ line: Substring) -> [(key: String, value: String)] {
        var pairs: [(key: String, value: String)] = []
        var index = line.startIndex
        while index < line.endIndex {
            while index < line.endIndex, line[index] == " " { index = line.index(after: index) }
            guard let equals = line[index...].firstIndex(of: "=") else { break }
            let key = String(line[index..<equals])
            index = line.index(after: equals)
            var value = ""
            if index < line.endIndex, line[index] == "\"" {
                index = line.index(after: index)
                while index < line.endIndex, line[index] != "\"" {
                    if line[index] == "\\", line.index(after: index) < line.endIndex {
                        index = line.index(after: index)
                        switch line[index] {
                        case "n": value.append("\n")
                        case "r": value.append("\r")
                        default: value.append(line[index])
                        }
                    } else {
                        value.append(line[index])
                    }
                    index = line.index(after: index)
                }
                if index < line.endIndex { index = line.index(after: index) }
            } else {
                let end = line[index...].firstIndex(of: " ") ?? line.endIndex
                value = String(line[index..<end])
                index = end
            }
            pairs.append((key, value))
        }
        return pairs
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
    /// Every listener's port, in `listen:` order (the first is `proxyPort`).
    let listenerPorts: [Int]
    let accessLog = LogCapture()

    static func start(_ yaml: String, _ substitutions: [String: String] = [:]) async throws -> TestGateway {
        var text = yaml
        for (key, value) in substitutions { text = text.replacingOccurrences(of: "{{\(key)}}", with: value) }
        let config = try ConfigLoader.parse(yaml: text, file: "test.yaml")
        return try await TestGateway(config: config)
    }

    /// From a file, which `POST /admin/reload` then reads again.
    static func start(path: String) async throws -> TestGateway {
        try await TestGateway(config: try ConfigLoader.load(path: path), path: path)
    }

    private init(config: GatewayConfig, path: String? = nil) async throws {
        let capture = accessLog
        server = try GatewayServer(
            config: config, logger: Logger(label: "gateway") { _ in SwiftLogNoOpLogHandler() },
            accessLog: capture, configPath: path)
        let bound = try await server.start()
        let contexts = server.contexts
        capture.flushGateway = {
            for context in contexts.ordered {
                try? context.eventLoop.submit { context.value.accessLog?.flush() }.wait()
            }
        }
        proxyPort = bound.proxyPort
        adminPort = bound.adminPort
        listenerPorts = bound.listeners.indices.map(bound.port(ofListener:))
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

    func admin(_ path: String, method: String = "GET", token: String? = nil) async throws -> TestResponse {
        let client = try await RawClient.connect(port: adminPort)
        defer { Task { await client.close() } }
        var text = "\(method) \(path) HTTP/1.1\r\nHost: admin\r\n"
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
