import Foundation
import Testing
import TestSupport

/// `gateway --upgrade` with the real binary: a new process takes the listening sockets over a
/// Unix socket, the old one drains and exits, and clients under load see nothing of it.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct BinaryUpgradeTests {
    static var binary: String { CommandLineTests.binary }

    static func launch(_ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try startSerially(process)
        return process
    }

    @Test func threeUpgradesUnderLoadRefuseAndFailNothing() async throws {
        let upstream = TestUpstream(name: "api")
        try await upstream.start()
        let directory = NSTemporaryDirectory() + "upgrade-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let proxy = try freePort()
        var admin = try freePort()
        while admin == proxy { admin = try freePort() }
        let file = directory + "/gateway.yaml", pidFile = directory + "/gateway.pid"
        try """
            listen: 127.0.0.1:\(proxy)
            admin: 127.0.0.1:\(admin)
            upgrade_socket: \(directory)/upgrade.sock
            access_log: true
            timeouts: { drain: 5s }
            pools:
              api: { servers: ["\(upstream.url)"] }
            routes:
              - { match: { path: /echo }, to: api, cache: { ttl: 30s } }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        var current = try Self.launch(["--config", file, "--pid-file", pidFile], log: directory + "/0.log")
        var processes = [current]
        defer { for process in processes where process.isRunning { process.terminate() } }
        func pid() -> Int32? {
            (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        #expect(try await waitUntil(.seconds(10)) { pid() == current.processIdentifier } != nil, "the first gateway did not start")

        let load = LoadWorkers(port: proxy, keepAlive: 4, newConnection: 2) { count in
            count % 5 == 0 ? ("POST", "/echo", "{\"n\":\(count)}") : count % 5 == 1 ? ("GET", "/echo", "") : ("GET", "/name", "")
        }
        try await Task.sleep(for: .milliseconds(500))
        var upgradeSeconds: [Double] = []
        let t0 = ContinuousClock.now
        var marks: [String] = []
        for round in 1...3 {
            let old = current
            let started = ContinuousClock.now
            current = try Self.launch(["--config", file, "--upgrade", "--pid-file", pidFile], log: directory + "/\(round).log")
            processes.append(current)
            let newProcess = current
            marks.append("launch \(round) at \(ContinuousClock.now - t0)")
            let tookOver = try await waitUntil(.seconds(15)) { pid() == newProcess.processIdentifier && !old.isRunning }
            marks.append("old gone \(round) at \(ContinuousClock.now - t0)")
            let log = (try? String(contentsOfFile: directory + "/\(round).log", encoding: .utf8)) ?? ""
            #expect(tookOver != nil, "upgrade \(round): the new process did not take over, or the old one did not exit; \(log)")
            let oldLog = (try? String(contentsOfFile: directory + "/\(round - 1).log", encoding: .utf8)) ?? ""
            #expect(old.terminationStatus == 0, "the old process exits 0 after draining: \(oldLog.suffix(3000))")
            upgradeSeconds.append(Double((ContinuousClock.now - started).components.attoseconds) / 1e18
                                  + Double((ContinuousClock.now - started).components.seconds))
            try await Task.sleep(for: .milliseconds(500))
        }
        let all = await load.stop()
        let failed = all.filter { $0.status != 200 }
        print("binary upgrades under load: \(all.count) requests, \(failed.count) failed; seconds from launch to the old process's exit: \(upgradeSeconds)")
        #expect(all.count > 500, "the load ran: \(all.count)")
        #expect(failed.isEmpty, "failed: \(failed.count) of \(all.count), e.g. \(failed.prefix(3).map { "\($0.start - t0) → \($0.end - t0) \($0.error ?? "")" }) \(marks)")
        // The last process serves, and a fourth --upgrade without a running gateway is refused.
        #expect(current.isRunning)
        current.terminate()
        current.waitUntilExit()
        let orphan = try Self.launch(["--config", file, "--upgrade"], log: directory + "/orphan.log")
        orphan.waitUntilExit()
        let orphanLog = (try? String(contentsOfFile: directory + "/orphan.log", encoding: .utf8)) ?? ""
        #expect(orphan.terminationStatus == 1 && orphanLog.contains("no running gateway answers at"), "\(orphanLog)")
        await upstream.stop()
        if failed.isEmpty { try? FileManager.default.removeItem(atPath: directory) } else { print("logs kept in \(directory)") }
    }
}
