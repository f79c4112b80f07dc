import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport

@testable import Gateway

/// Read-your-writes against the real stack: an API that really writes and reads rows on a
/// PostgreSQL primary and its streaming replicas.
@Suite(.timeLimit(.minutes(6)), .serialized)
struct ConsistencyTests {
    static func config(_ mode: String, maxWait: String = "150ms", store: String = "local") -> String {
        """
        health: { database_interval: 200ms, database_timeout: 1s, max_lag: 1h }
        consistency: { mode: \(mode), secret: "a-secret-of-at-least-16", max_wait: \(maxWait), store: \(store) }
        """
    }

    struct Tally: Sendable {
        var sequences = 0
        var stale = 0
        var readsByNode: [String: Int] = [:]
        var outcomes: [String: Int] = [:]
        var readNanoseconds: Int64 = 0
        var failures: [String] = []
    }

    /// `clients` concurrent clients, each with its own user row, doing write-then-read sequences:
    /// the read must return what the write just stored. Clients send back the token they were
    /// given: half as a header, half as the cookie.
    static func writeThenRead(_ gateway: TestGateway, clients: Int, sequences: Int, readRegion: String,
                              pause: Duration = .zero, readThrough other: TestGateway? = nil, sendToken: Bool = true) async -> Tally {
        let tally = NIOLockedValueBox(Tally())
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    let user = "00000000-0000-4000-8000-\(String(format: "%012x", 100 + client))"
                    let reader = other ?? gateway
                    for i in 0..<sequences {
                        let plan = "p\(client)-\(i)"
                        do {
                            let write = try await gateway.send("PUT", "/api/subscriptions/\(user)", body: "{\"plan\":\"\(plan)\"}")
                            guard write.status == 200 else {
                                tally.withLockedValue { $0.failures.append("write \(write.status) \(write.text.prefix(100))") }
                                continue
                            }
                            if pause > .zero { try await Task.sleep(for: pause) }
                            var headers = ["X-Region: \(readRegion)"]
                            if sendToken, let token = write.header("x-gateway-consistency-token") {
                                headers.append(client % 2 == 0 ? "X-Gateway-Consistency-Token: \(token)" : "Cookie: session=s\(client); gw_consistency=\(token)")
                            }
                            let started = ContinuousClock.now
                            let read = try await RawClient.request("GET", "http://127.0.0.1:\(reader.proxyPort)/api/subscriptions/\(user)",
                                                                   headers: headers, timeout: .seconds(15))
                            let elapsed = ContinuousClock.now - started
                            let body = try JSONSerialization.jsonObject(with: Data(read.body)) as? [String: Any]
                            tally.withLockedValue { tally in
                                tally.sequences += 1
                                tally.readNanoseconds += elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
                                if body?["plan"] as? String != plan { tally.stale += 1 }
                                tally.readsByNode[read.header("x-db-node") ?? "?", default: 0] += 1
                                tally.outcomes[read.header("x-gateway-consistency") ?? "none", default: 0] += 1
                            }
                        } catch {
                            tally.withLockedValue { $0.failures.append("\(error)") }
                        }
                    }
                }
            }
        }
        return tally.withLockedValue { $0 }
    }

    @Test func pausedReplicasNeverShowAClientItsOwnStaleDataInTimeAndLSNModes() async throws {
        for (mode, maxWait) in [("none", "150ms"), ("time", "150ms"), ("lsn", "20ms")] {
            try await withStackGateway(regions: ["us-east", "eu-west"], extraYAML: Self.config(mode, maxWait: maxWait)) { stack, gateway in
                try await stack.pauseReplay("eu-west")
                let tally = await Self.writeThenRead(gateway, clients: 4, sequences: 250, readRegion: "eu-west")
                print("consistency \(mode): \(tally.sequences) sequences, stale \(tally.stale), reads by node \(tally.readsByNode), outcomes \(tally.outcomes)")
                #expect(tally.failures.isEmpty, "\(tally.failures.prefix(3))")
                #expect(tally.sequences == 1000)
                if mode == "none" {
                    // Without read-your-writes the paused replica serves old rows: the test can fail.
                    #expect(tally.stale > 900, "mode none showed only \(tally.stale) stale reads")
                } else {
                    #expect(tally.stale == 0, "\(mode) mode: \(tally.stale) stale reads")
                    #expect(tally.readsByNode["pg-us-east"] == 1000)
                    #expect(tally.outcomes["primary-pinned"] == 1000)
                }
            }
        }
    }

    @Test func caughtUpReplicasKeepTheReadsInLSNMode() async throws {
        try await withStackGateway(regions: ["us-east", "eu-west"], extraYAML: Self.config("lsn")) { _, gateway in
            // Reads that follow their write by more than max_wait.
            let tally = await Self.writeThenRead(gateway, clients: 4, sequences: 40, readRegion: "eu-west", pause: .milliseconds(200))
            let onReplica = tally.readsByNode["pg-eu-west", default: 0]
            let share = Double(onReplica) / Double(max(1, tally.sequences))
            let averageMs = Double(tally.readNanoseconds) / Double(max(1, tally.sequences)) / 1e6
            print("consistency lsn, caught up: \(tally.sequences) reads, \(Int(share * 100))% on the replica, outcomes \(tally.outcomes), average read \(averageMs) ms")
            #expect(tally.failures.isEmpty)
            #expect(tally.stale == 0)
            #expect(share >= 0.95, "only \(Int(share * 100))% of reads stayed on the replica")

            // Immediately after the write (no pause): still never stale; the waits show in latency.
            let immediate = await Self.writeThenRead(gateway, clients: 4, sequences: 40, readRegion: "eu-west")
            let immediateShare = Double(immediate.readsByNode["pg-eu-west", default: 0]) / Double(max(1, immediate.sequences))
            print("consistency lsn, immediate: \(immediate.sequences) reads, \(Int(immediateShare * 100))% on the replica, outcomes \(immediate.outcomes), average read \(Double(immediate.readNanoseconds) / Double(max(1, immediate.sequences)) / 1e6) ms")
            #expect(immediate.stale == 0)
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_consistency_tokens_total{kind=\"lsn\"}"))
            #expect(metrics.contains("gateway_consistency_wait_seconds_count"))
        }
    }

    @Test func twoInstancesWithOneSecretAgree() async throws {
        try await withStack(regions: ["us-east", "eu-west"], redis: false) { stack in
            let yaml = stackGatewayYAML(stack, regions: ["us-east", "eu-west"], extraYAML: Self.config("lsn", maxWait: "20ms", store: "none"))
            let first = try await TestGateway.start(yaml)
            let second = try await TestGateway.start(yaml)
            try await stack.pauseReplay("eu-west")
            let tally = await Self.writeThenRead(first, clients: 2, sequences: 50, readRegion: "eu-west", readThrough: second)
            #expect(tally.failures.isEmpty)
            #expect(tally.sequences == 100)
            #expect(tally.stale == 0, "a token from one instance was not honoured by the other")
            // And without the token the second instance serves the stale replica: the check means something.
            let blind = await Self.writeThenRead(first, clients: 1, sequences: 10, readRegion: "eu-west", readThrough: second, sendToken: false)
            #expect(blind.stale == 10)
            await first.stop()
            await second.stop()
        }
    }

    @Test func tamperedTokensChangeNothing() async throws {
        try await withStackGateway(regions: ["us-east", "eu-west"], extraYAML: Self.config("lsn", maxWait: "20ms", store: "none")) { stack, gateway in
            try await stack.pauseReplay("eu-west")
            let user = "00000000-0000-4000-8000-000000000099"
            let write = try await gateway.send("PUT", "/api/subscriptions/\(user)", body: "{\"plan\":\"fresh\"}")
            let token = try #require(write.header("x-gateway-consistency-token"))
            #expect(write.header("set-cookie")?.hasPrefix("gw_consistency=\(token);") == true)
            var parts = token.split(separator: ".").map(String.init)
            let original = parts
            func read(_ token: String) async throws -> TestResponse {
                try await RawClient.request("GET", "http://127.0.0.1:\(gateway.proxyPort)/api/subscriptions/\(user)",
                                            headers: ["X-Region: eu-west", "X-Gateway-Consistency-Token: \(token)"])
            }
            // The genuine token: the primary, with the fresh row.
            let genuine = try await read(token)
            #expect(genuine.header("x-gateway-consistency") == "primary-pinned")
            #expect(genuine.header("x-db-node") == "pg-us-east")
            // A lowered position, a changed MAC, garbage: ignored as if absent (the stale replica).
            parts[2] = "1"
            let lowered = try await read(parts.joined(separator: "."))
            parts = original
            parts[4] = String(parts[4].reversed())
            let forged = try await read(parts.joined(separator: "."))
            for response in [lowered, forged, try await read("garbage")] {
                #expect(response.header("x-gateway-consistency") == nil)
                #expect(response.header("x-db-node") == "pg-eu-west")
            }
        }
    }

    @Test func clientsWithoutCookiesAreFollowedByTheirIdentity() async throws {
        try await withStackGateway(regions: ["us-east", "eu-west"], extraYAML: Self.config("lsn", maxWait: "20ms")) { stack, gateway in
            try await stack.pauseReplay("eu-west")
            let user = "00000000-0000-4000-8000-000000000077"
            func send(_ method: String, authorization: String, body: String? = nil) async throws -> TestResponse {
                try await RawClient.request(method, "http://127.0.0.1:\(gateway.proxyPort)/api/subscriptions/\(user)",
                                            headers: ["X-Region: eu-west", "Authorization: Bearer \(authorization)"], body: body)
            }
            #expect(try await send("PUT", authorization: "api-key-1", body: "{\"plan\":\"by-identity\"}").status == 200)
            // The same API key, no token sent back: the store remembers the write.
            let same = try await send("GET", authorization: "api-key-1")
            #expect(same.header("x-gateway-consistency") == "primary-pinned")
            #expect(same.text.contains("by-identity"))
            // Someone else is not held back.
            let other = try await send("GET", authorization: "api-key-2")
            #expect(other.header("x-gateway-consistency") == nil)
            #expect(other.header("x-db-node") == "pg-eu-west")
        }
    }

    /// HTTP/2: a write and the read after it as two streams of one TLS connection (curl's
    /// --next reuses it; curl 7.88 cannot reuse an h2c prior-knowledge connection, against nginx
    /// either). The replica is paused, so only read-your-writes keeps the read off it.
    @Test func aWriteAndItsReadOnOneHTTP2Connection() async throws {
        let c = TLSListenerTests.certificates
        try await withStackGateway(regions: ["us-east", "eu-west"], extraYAML: Self.config("lsn", maxWait: "20ms"),
                                   listen: "{ address: 127.0.0.1:0, tls: { cert: \(c.certFile("api")), key: \(c.keyFile("api")) } }") { stack, gateway in
            try await stack.pauseReplay("eu-west")
            let port = gateway.proxyPort
            let url = "https://api.test:\(port)/api/subscriptions/00000000-0000-4000-8000-000000000078"
            let common = "--http2 -sS --max-time 15 --cacert \(c.caFile) --resolve api.test:\(port):127.0.0.1 -H 'X-Region: eu-west' -H 'Authorization: Bearer api-key-h2'"
            let run = try Shell.run("curl \(common) -o /dev/null -w '%{http_code} %{http_version}\\n' -X PUT -H 'Content-Type: application/json' "
                                    + "-d '{\"plan\":\"over-h2\"}' \(url) --next \(common) -D - \(url)")
            #expect(run.output.hasPrefix("200 2\n"), "\(run.output)")
            #expect(run.output.lowercased().contains("x-gateway-consistency: primary-pinned"), "\(run.output)")
            #expect(run.output.contains("over-h2"), "\(run.output)")
            let lines = gateway.accessLog.entries.filter { $0.metadata["path"]?.description.hasPrefix("/api/subscriptions/") == true }
            #expect(lines.count == 2 && lines.allSatisfy { $0.metadata["proto"] == "h2" }, "\(lines)")
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_http2_connections_total{listener=\"127.0.0.1:0\"} 1"), "\(metrics)")
        }
    }
}
