import Foundation
import Testing
import TestSupport

@testable import Gateway

/// The `gateway` executable itself: `--check`, `--help`, and a clean exit on SIGTERM.
@Suite(.timeLimit(.minutes(1)))
struct CommandLineTests {
    static let binary: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/gateway").path
    }()

    func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let result = try await runProcessCapturing(Self.binary, arguments)
        return (result.status, result.output + result.errors)
    }

    func temporaryFile(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "gateway-test-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func binaryExists() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build the package first: swift build")
    }

    @Test func checkAcceptsAValidFile() async throws {
        let path = try temporaryFile("pools:\n  primary: { servers: [http://127.0.0.1:9000] }\n")
        let result = try await run(["--check", path])
        #expect(result.status == 0)
        #expect(result.output.contains("OK"))
    }

    @Test func checkNamesFileLineAndKey() async throws {
        let path = try temporaryFile("pools:\n  primary:\n    servers: [http://127.0.0.1:9000]\n    wieght: 3\n")
        let result = try await run(["--check", path])
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):4:"))
        #expect(result.output.contains("pools.primary.wieght"))
        #expect(result.output.contains("unknown key"))
    }

    @Test func helpExplainsBothModes() async throws {
        let result = try await run(["--help"])
        #expect(result.status == 0)
        #expect(result.output.contains("--config"))
        #expect(result.output.contains("--check"))
    }

    /// The binary in front of `upstream`, and a client connected to it once it listens.
    func startGateway(upstream: TestUpstream, arguments: [String] = [], standardOutput: FileHandle = .nullDevice)
        async throws -> (process: Process, connection: RawClient) {
        let port = try freePort()
        let path = try temporaryFile("""
            listen: 127.0.0.1:\(port)
            admin: 127.0.0.1:0
            pools:
              primary: { servers: ["\(upstream.url)"] }
            """)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--config", path] + arguments
        process.standardOutput = standardOutput
        process.standardError = FileHandle.nullDevice
        try startSerially(process)
        var client: RawClient?
        for _ in 0..<100 where client == nil {
            client = try? await RawClient.connect(port: port)
            if client == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        return (process, try #require(client))
    }

    @Test func sigtermDrainsAndExitsZero() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let (process, connection) = try await startGateway(upstream: upstream)
        try await connection.send("GET /delay/500 HTTP/1.1\r\nHost: t\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))
        process.terminate()  // SIGTERM
        let response = try await connection.readResponse(timeout: .seconds(5))
        #expect(response.status == 200)
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(process.terminationStatus == 0)
        #expect(process.terminationReason == .exit)
        await upstream.stop()
    }

    /// SIGHUP re-reads the TLS listeners' certificates: a renewed certificate is served to new
    /// connections without a restart; a broken file is logged and counted, and the certificate in
    /// use stays.
    @Test func sighupReloadsTheTLSCertificates() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let certificates = try TestCertificates()
        try certificates.makeServer("old", dnsNames: ["api.test"])
        try certificates.makeServer("new", dnsNames: ["api.test", "renewed.test"])
        let cert = certificates.directory + "/live.pem", key = certificates.directory + "/live.key"
        func install(_ name: String) throws {
            for (from, to) in [(certificates.certFile(name), cert), (certificates.keyFile(name), key)] {
                try? FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: from, toPath: to)
            }
        }
        try install("old")
        let port = try freePort(), admin = try freePort()
        let path = try temporaryFile("""
            listen:
              - { address: 127.0.0.1:\(port), tls: { cert: \(cert), key: \(key) } }
            admin: 127.0.0.1:\(admin)
            pools:
              primary: { servers: ["\(upstream.url)"] }
            """)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--config", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try startSerially(process)
        defer { process.terminate() }
        /// The subjectAltName of the certificate a new connection gets.
        func served() throws -> String {
            try Shell.run("openssl s_client -connect 127.0.0.1:\(port) -servername api.test </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName").output
        }
        var first = ""
        for _ in 0..<100 where !first.contains("api.test") {
            first = try served()
            if !first.contains("api.test") { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(first.contains("DNS:api.test") && !first.contains("renewed.test"), "\(first)")

        try install("new")
        kill(process.processIdentifier, SIGHUP)
        var renewed = ""
        for _ in 0..<100 where !renewed.contains("renewed.test") {
            try await Task.sleep(for: .milliseconds(50))
            renewed = try served()
        }
        #expect(renewed.contains("DNS:renewed.test"), "\(renewed)")

        try "not a certificate".write(toFile: cert, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        var metrics = ""
        for _ in 0..<100 where !metrics.contains("result=\"error\"") {
            try await Task.sleep(for: .milliseconds(50))
            metrics = try Shell.run("curl -s http://127.0.0.1:\(admin)/metrics").output
        }
        #expect(metrics.contains("gateway_tls_certificate_reloads_total{result=\"ok\"} 1"), "\(metrics)")
        #expect(metrics.contains("gateway_tls_certificate_reloads_total{result=\"error\"} 1"), "\(metrics)")
        #expect(try served().contains("DNS:renewed.test"))
        #expect(process.isRunning)
        await upstream.stop()
    }

    /// The access log of the real binary on standard output: every request of a pipelined burst
    /// has its line, lines are whole and in logfmt, and nothing buffered is lost at SIGTERM.
    @Test func theAccessLogHasALinePerRequestAndLosesNoneAtExit() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        let logPath = NSTemporaryDirectory() + "gateway-access-\(UUID().uuidString).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let (process, connection) = try await startGateway(upstream: upstream, arguments: ["--event-loops", "1"],
                                                           standardOutput: log)
        let count = 200
        var burst = ""
        for i in 0..<count { burst += "GET /echo?n=\(i) HTTP/1.1\r\nHost: t\r\n\r\n" }
        try await connection.send(burst)
        for _ in 0..<count {
            #expect(try await connection.readResponse(timeout: .seconds(5)).status == 200)
        }
        process.terminate()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(process.terminationStatus == 0)
        try log.close()
        let text = try String(contentsOfFile: logPath, encoding: .utf8)
        let lines = text.split(separator: "\n").filter { $0.contains("logger=access") }
        #expect(lines.count == count)
        #expect(text.hasSuffix("\n"))
        let paths = Set(lines.compactMap { line in LogCapture.parse(line).first { $0.key == "path" }?.value })
        #expect(paths == Set((0..<count).map { "/echo?n=\($0)" }))
        #expect(lines.allSatisfy { $0.hasPrefix("ts=") && $0.contains(try! Regex("status=200 tls=- trace_id=[0-9a-f]{32}$")) })
        await upstream.stop()
    }
}
