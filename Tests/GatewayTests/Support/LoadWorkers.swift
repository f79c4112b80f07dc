import NIOConcurrencyHelpers
import TestSupport

/// A bounded load for tests that change things under traffic (reloads, DNS moves): keep-alive
/// workers (one connection for all their requests) and new-connection workers, each request
/// recorded with its times, status, and where it was served. Every worker stops at `stop()`,
/// after 60 s, or after 5,000 requests, whichever comes first.
final class LoadWorkers: Sendable {
    struct Sample: Sendable {
        var start: ContinuousClock.Instant
        var end: ContinuousClock.Instant
        var path: String
        var status: Int
        /// `X-Gateway-Pool` (with `debug_headers`) and `X-Upstream-Name` (TestUpstream's /name).
        var pool: String?
        var upstream: String?
        var error: String?
        /// The request went on a connection that had carried earlier ones.
        var reused = false
    }

    private let samples = NIOLockedValueBox<[Sample]>([])
    private let stopped = NIOLockedValueBox(false)
    private let task: Task<Void, Never>

    /// - Parameter request: the n-th request of a worker (from 1): method, path, body.
    init(port: Int, keepAlive: Int, newConnection: Int,
         request: @escaping @Sendable (Int) -> (method: String, path: String, body: String)) {
        let samples = self.samples, stopped = self.stopped
        task = Task {
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<(keepAlive + newConnection) {
                    group.addTask {
                        await Self.worker(port: port, keepAlive: index < keepAlive, request: request, samples: samples, stopped: stopped)
                    }
                }
            }
        }
    }

    /// What has been recorded so far.
    var recorded: [Sample] { samples.withLockedValue { $0 } }

    /// Stops the workers and returns every request they made.
    func stop() async -> [Sample] {
        stopped.withLockedValue { $0 = true }
        await task.value
        return recorded
    }

    private static func worker(port: Int, keepAlive: Bool, request: @Sendable (Int) -> (method: String, path: String, body: String),
                               samples: NIOLockedValueBox<[Sample]>, stopped: NIOLockedValueBox<Bool>) async {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var client: RawClient?
        var count = 0
        while !stopped.withLockedValue({ $0 }), clock.now < deadline, count < 5_000 {
            count += 1
            let (method, path, body) = request(count)
            let start = clock.now
            let reused = client != nil
            do {
                if client == nil { client = try await RawClient.connect(port: port) }
                var text = "\(method) \(path) HTTP/1.1\r\nHost: gateway.test\r\n"
                if !body.isEmpty { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
                if !keepAlive { text += "Connection: close\r\n" }
                try await client!.send(text + "\r\n" + body)
                let response = try await client!.readResponse()
                samples.withLockedValue {
                    $0.append(Sample(start: start, end: clock.now, path: path, status: response.status,
                                     pool: response.header("X-Gateway-Pool"), upstream: response.header("X-Upstream-Name")))
                }
                if !keepAlive || response.header("Connection")?.lowercased() == "close" {
                    await client!.close()
                    client = nil
                }
            } catch {
                samples.withLockedValue { $0.append(Sample(start: start, end: clock.now, path: path, status: 0, error: "\(error)", reused: reused)) }
                if let client { await client.close() }
                client = nil
            }
        }
        if let client { await client.close() }
    }
}
