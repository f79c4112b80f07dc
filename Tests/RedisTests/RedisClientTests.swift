import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TestSupport

@testable import Redis

/// The Redis client against a real redis-server.
@Suite(.timeLimit(.minutes(2)))
struct RedisClientTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    func withRedis(arguments: [String] = [], url: ((RedisServer) -> String)? = nil,
                   // Tests of timeouts pass their own; for the others, room for a loaded machine
                   // (200 ms timed out under PostgreSQL start-ups in parallel suites).
                   commandTimeout: TimeAmount = .seconds(1), breakerOpenNanoseconds: Int64 = 200_000_000,
                   _ body: (RedisServer, RedisClient) async throws -> Void) async throws {
        let server = try await RedisServer.start(arguments: arguments)
        let settings = RedisClient.Settings(
            url: try RedisURL(url?(server) ?? server.url), connectTimeout: .milliseconds(500), commandTimeout: commandTimeout,
            breaker: .init(threshold: 3, baseOpenNanoseconds: breakerOpenNanoseconds, maxOpenNanoseconds: max(breakerOpenNanoseconds, 1_000_000_000)))
        let client = RedisClient(settings: settings, eventLoops: Array(Self.group.makeIterator()), logger: Logger(label: "redis-test"))
        do {
            try await body(server, client)
        } catch {
            await client.close()
            await server.stop()
            throw error
        }
        await client.close()
        await server.stop()
    }

    @Test func binaryValuesRoundTripByteForByte() async throws {
        try await withRedis { server, client in
            var value = ByteBuffer()
            for round in 0..<40 { for byte in 0...255 { value.writeInteger(UInt8((byte + round) & 0xFF)) } }
            let set = try await client.send("SET", "binary", .bytes(value))
            #expect(set == .status("OK"))
            let got = try await client.send("GET", "binary")
            #expect(got.bytes == value)
            #expect(try await client.send("GET", "missing") == .null)
            #expect(try await server.command("STRLEN", "binary") == "\(256 * 40)")
        }
    }

    @Test func pipelinedCommandsOnOneLoopAreAnsweredInOrder() async throws {
        try await withRedis { _, client in
            let loop = Self.group.next()
            let loopClient = try #require(client.client(on: loop))
            // 2,000 commands issued in one go on the loop: one connection, replies in order.
            let results = try await loop.flatSubmit {
                let futures = (0..<2000).map { _ in loopClient.send(RedisCommand("INCR", "counter")) }
                return EventLoopFuture.whenAllSucceed(futures, on: loop)
            }.get()
            #expect(results.map { $0.integer ?? -1 } == Array(1...2000).map(Int64.init))
            let stats = await client.stats()
            #expect(stats.connects >= 1 && stats.connects <= 2)  // one per loop at most
        }
    }

    @Test func scriptsRunBySHAAndAreResentAfterAFlush() async throws {
        try await withRedis { server, client in
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try await client.evalScript(script, keys: ["n"], arguments: [5]) == .integer(5))
            #expect(try await server.command("SCRIPT", "EXISTS", script.sha1) == "1")
            _ = try await server.command("SCRIPT", "FLUSH")
            // NOSCRIPT, then EVAL with the source: the caller never sees the difference.
            #expect(try await client.evalScript(script, keys: ["n"], arguments: [2]) == .integer(7))
            // An error inside the script is the script's answer, not a connection problem.
            do {
                _ = try await client.evalScript(script, keys: ["n"], arguments: ["x"])
                Issue.record("INCRBY by 'x' succeeded")
            } catch RedisError.reply(let message) {
                #expect(message.hasPrefix("ERR value is not an integer"))
            }
        }
    }

    @Test func passwordAndDatabaseFromTheURL() async throws {
        try await withRedis(arguments: ["--requirepass", "s3cret"], url: { "redis://:s3cret@127.0.0.1:\($0.port)/3" }) { server, client in
            let set = try await client.send("SET", "where", "db3")
            let stored = try await server.command("-a", "s3cret", "--no-auth-warning", "-n", "3", "GET", "where")
            #expect(set == .status("OK") && stored == "db3")
        }
        try await withRedis(arguments: ["--requirepass", "s3cret"], url: { "redis://:wrong@127.0.0.1:\($0.port)/0" }) { _, client in
            await #expect(throws: RedisError.self) { _ = try await client.send("PING") }
        }
    }

    @Test func aHungServerTimesOutOpensTheBreakerAndRecovers() async throws {
        // The circuit stays open 1 s, so on a loaded machine the check that it fails fast still
        // comes before the cool-down ends.
        try await withRedis(commandTimeout: .milliseconds(100), breakerOpenNanoseconds: 1_000_000_000) { server, client in
            let loop = Self.group.next()
            let loopClient = try #require(client.client(on: loop))
            func send(_ command: RedisCommand) async -> Result<RedisValue, RedisError> {
                do { return .success(try await loop.flatSubmit { loopClient.send(command) }.get()) } catch {
                    return .failure(error as? RedisError ?? .connection("\(error)"))
                }
            }
            // The connection is up before the server hangs (a first PING may itself time out
            // on a loaded machine; those do not count below).
            var up = false
            for _ in 0..<20 where !up { up = (try? await send(RedisCommand("PING")).get()) == .status("PONG") }
            #expect(up)
            let timeoutsBefore = await client.stats().errors["timeout"] ?? 0
            server.pause()
            var results: [Result<RedisValue, RedisError>] = []
            let started = ContinuousClock.now
            for _ in 0..<3 { results.append(await send(RedisCommand("PING"))) }
            #expect(results.allSatisfy { $0 == .failure(.timeout) })
            // Each times out after 100-200 ms (timeouts are swept every 100 ms); the bound leaves
            // room for a loaded CI machine while still telling a timeout from a hang.
            #expect(ContinuousClock.now - started < .seconds(2), "each timed out after ~100 ms")
            // Three timeouts opened the circuit: commands now fail at once.
            let fast = ContinuousClock.now
            #expect(await send(RedisCommand("PING")) == .failure(.unavailable))
            #expect(ContinuousClock.now - fast < .milliseconds(50))
            server.resume()
            // After the cool-down a probe goes through and closes the circuit.
            var recovered = false
            for _ in 0..<50 where !recovered {
                try await Task.sleep(for: .milliseconds(50))
                recovered = (try? await send(RedisCommand("PING")).get()) == .status("PONG")
            }
            #expect(recovered)
            let stats = await client.stats()
            #expect(stats.errors["timeout"] == timeoutsBefore + 3)
            #expect(stats.breakerOpenings >= 1)
            #expect(!stats.breakerOpen)
        }
    }

    @Test func aKilledServerIsReconnectedOnceItIsBack() async throws {
        try await withRedis { server, client in
            #expect(try await client.send("SET", "a", "1") == .status("OK"))
            await server.kill()
            var failures = 0
            for _ in 0..<6 where (try? await client.send("PING")) == nil { failures += 1 }
            #expect(failures == 6, "every command fails (connection refused, then the open circuit) and none hangs")
            try await server.launch()
            var back = false
            for _ in 0..<60 where !back {
                try await Task.sleep(for: .milliseconds(50))
                back = (try? await client.send("PING")) == .status("PONG")
            }
            #expect(back)
            // The data died with the server (no persistence): the client sees the new server.
            #expect(try await client.send("GET", "a") == .null)
        }
    }

    @Test func aSubscriberHearsMessagesAndResubscribesAfterALoss() async throws {
        try await withRedis { server, client in
            let events = NIOLockedValueBox<[String]>([])
            let subscriber = RedisSubscriber(
                client: client, channel: "gw:test", eventLoop: Self.group.next(), logger: Logger(label: "sub"),
                onMessage: { payload in events.withLockedValue { $0.append("message:" + String(buffer: payload)) } },
                onState: { subscribed in events.withLockedValue { $0.append(subscribed ? "up" : "down") } })
            subscriber.start()
            func waitFor(_ event: String, seconds: Int = 2) async throws -> Bool {
                for _ in 0..<(seconds * 100) {
                    if events.withLockedValue({ $0.contains(event) }) { return true }
                    try await Task.sleep(for: .milliseconds(10))
                }
                return false
            }
            #expect(try await waitFor("up"))
            _ = try await client.send("PUBLISH", "gw:test", "first")
            #expect(try await waitFor("message:first"))
            await server.kill()
            #expect(try await waitFor("down"))
            // Cleared before the server returns: the subscriber may be back before launch() is.
            events.withLockedValue { $0.removeAll() }
            try await server.launch()
            // Reconnects back off up to 5 s between attempts, so the first one after the
            // server's return may come that late.
            #expect(try await waitFor("up", seconds: 8), "resubscribed after the server came back")
            var delivered = false
            for _ in 0..<50 where !delivered {
                _ = try? await client.send("PUBLISH", "gw:test", "second")
                delivered = try await waitFor("message:second")
            }
            #expect(delivered)
            await subscriber.close()
        }
    }
}
