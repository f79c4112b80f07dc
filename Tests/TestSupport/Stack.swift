import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The real stack (PostgreSQL primary + streaming replicas, Redis, sample API servers) for
/// integration tests. It drives `loadtest/stack`, the same tool the demo and the load tests use,
/// with its own state directory, and names this test process as the stack's owner: if the test
/// run dies, the stack's supervisor takes everything down by itself.
public final class Stack: Sendable {
    public struct Node: Decodable, Sendable {
        public let name: String
        public let region: String
        public let role: String
        public let port: Int
        public let url: String
        public let data: String
    }

    public struct API: Decodable, Sendable {
        public let name: String
        public let region: String
        public let node: String
        public let port: Int
        public let url: String
        public let pid: Int32?
    }

    public struct Redis: Decodable, Sendable {
        public let port: Int
        public let url: String
        public let pid: Int32?
    }

    struct State: Decodable {
        let dir: String
        let nodes: [Node]
        let apis: [API]
        let redis: Redis?
        let supervisor_pid: Int32
        let startup_seconds: Double?
    }

    public let nodes: [Node]
    public let apis: [API]
    public let redis: Redis?
    public let directory: String
    public let supervisorPID: Int32
    public let startupSeconds: Double
    public let stateDirectory: String

    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var tool: String { repositoryRoot.appendingPathComponent("loadtest/stack").path }

    private init(state: State, stateDirectory: String) {
        nodes = state.nodes
        apis = state.apis
        redis = state.redis
        directory = state.dir
        supervisorPID = state.supervisor_pid
        startupSeconds = state.startup_seconds ?? 0
        self.stateDirectory = stateDirectory
    }

    /// Starts a stack: a primary in `regions[0]` and a replica in each further region.
    public static func start(
        regions: [String] = ["us-east", "eu-west", "ap-southeast"], redis: Bool = true, api: Bool = true,
        users: Int = 200, apiWorkers: Int = 1
    ) async throws -> Stack {
        let stateDirectory = NSTemporaryDirectory() + "stack-state-\(UUID().uuidString.prefix(8))"
        var arguments = ["--state", stateDirectory, "up", "--json", "--owner-pid", String(getpid()),
                         "--replicas", String(regions.count - 1), "--regions", regions.joined(separator: ","),
                         "--users", String(users), "--api-workers", String(apiWorkers)]
        if !redis { arguments.append("--no-redis") }
        if !api { arguments.append("--no-api") }
        let output = try await runTool(arguments)
        let state = try JSONDecoder().decode(State.self, from: Data(output.utf8))
        return Stack(state: state, stateDirectory: stateDirectory)
    }

    /// Stops everything the stack started and deletes its files.
    public func stop() async {
        _ = try? await Self.runTool(["--state", stateDirectory, "down"])
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }

    public func node(_ region: String) -> Node { nodes.first { $0.region == region }! }
    public func api(_ region: String) -> API { apis.first { $0.region == region }! }
    public var primary: Node { nodes[0] }

    /// `pg-REGION`, `api-REGION` or `redis`.
    public func kill(_ part: String) async throws { _ = try await tool("kill", part) }
    public func start(_ part: String) async throws { _ = try await tool("start", part) }
    public func pauseReplay(_ region: String) async throws { _ = try await tool("pause-replay", region) }
    public func resumeReplay(_ region: String) async throws { _ = try await tool("resume-replay", region) }
    public func promote(_ region: String) async throws { _ = try await tool("promote", region) }

    /// Runs SQL on a node and returns psql's unaligned, tuples-only output.
    public func psql(_ region: String, _ sql: String) async throws -> String {
        try await tool("psql", region, sql).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Process IDs of everything the stack runs: supervisor, API masters, Redis, postmasters.
    public func processIDs() -> [Int32] {
        var pids = [supervisorPID]
        pids += apis.compactMap(\.pid)
        if let pid = redis?.pid { pids.append(pid) }
        for node in nodes {
            if let text = try? String(contentsOfFile: node.data + "/postmaster.pid", encoding: .utf8),
               let pid = Int32(text.split(separator: "\n").first ?? "") {
                pids.append(pid)
            }
        }
        return pids
    }

    /// Whether a process exists and is not a zombie.
    public static func isRunning(_ pid: Int32) -> Bool {
        guard Glibc.kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        let afterName = stat.split(separator: ")").last ?? ""
        return afterName.split(separator: " ").first != "Z"
    }

    private func tool(_ arguments: String...) async throws -> String {
        try await Self.runTool(["--state", stateDirectory] + arguments)
    }

    static func runTool(_ arguments: [String]) async throws -> String {
        try await runProcess(tool, arguments)
    }
}

/// Runs `body` with a fresh stack that is stopped afterwards, also when `body` throws.
public func withStack<T>(
    regions: [String] = ["us-east", "eu-west", "ap-southeast"], redis: Bool = true, api: Bool = true,
    _ body: (Stack) async throws -> T
) async throws -> T {
    let stack = try await Stack.start(regions: regions, redis: redis, api: api)
    do {
        let result = try await body(stack)
        await stack.stop()
        return result
    } catch {
        await stack.stop()
        throw error
    }
}

/// Runs a program and returns its standard output; throws with its output when it fails.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> String {
    let result = try await runProcessCapturing(executable, arguments, environment: environment)
    guard result.status == 0 else {
        throw TestClientError("\(executable) \(arguments.joined(separator: " ")) exited \(result.status):\n\(result.output)\(result.errors)")
    }
    return result.output
}

/// Starts `process`, one start at a time in this test process: Foundation's `Process.run()` on
/// Linux crashes now and then when several threads start processes at once (a bad copy inside
/// `Process.run`, seen when Redis servers and the stack started in parallel tests).
public func startSerially(_ process: Process) throws {
    try processStartLock.withLock { try process.run() }
}

private let processStartLock = NSLock()

/// Starts `command` (a shell command line; its output appended to `log`) under a small shell
/// watchdog that kills it when this test process dies, so a crashed run leaves no server behind.
/// The watchdog ends once the command does.
public func startWatched(_ command: String, log: String) throws {
    let script = "(\(command)) >> \(log) 2>&1 & c=$!; trap 'kill -9 $c 2>/dev/null' TERM; "
        + "while kill -0 \(getpid()) 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 0.5; done; kill -9 $c 2>/dev/null; wait $c"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try startSerially(process)
}

/// Runs a program to its end without blocking a thread of the concurrency pool (a test that
/// blocks one starves every other test running at the same time). Both pipes are drained on
/// background threads, so a chatty program cannot fill a pipe and block while we wait for it.
public func runProcessCapturing(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws
    -> (status: Int32, output: String, errors: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    let drained = DispatchGroup()
    nonisolated(unsafe) var out = Data()
    nonisolated(unsafe) var err = Data()
    drained.enter()
    DispatchQueue.global().async { out = output.fileHandleForReading.readDataToEndOfFile(); drained.leave() }
    drained.enter()
    DispatchQueue.global().async { err = errors.fileHandleForReading.readDataToEndOfFile(); drained.leave() }
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in
            drained.notify(queue: .global()) { continuation.resume(returning: finished.terminationStatus) }
        }
        do {
            try startSerially(process)
        } catch {
            process.terminationHandler = nil
            try? output.fileHandleForWriting.close()
            try? errors.fileHandleForWriting.close()
            continuation.resume(throwing: error)
        }
    }
    return (status, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}
