import Logging
import NIOCore
import NIOPosix
import Redis
import Router
import Testing
import TestSupport

@testable import Cache

/// Tokens by identity in a real redis-server: the stricter one is kept, and it expires.
@Suite(.timeLimit(.minutes(1)))
struct RedisConsistencyStoreTests {
    @Test func theStricterTokenIsKeptAndExpires() async throws {
        let server = try await RedisServer.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = RedisClient(settings: .init(url: try RedisURL(server.url), commandTimeout: .seconds(1)),
                                 eventLoops: [group.next()], logger: Logger(label: "consistency-store-test"))
        let loop = try #require(client.client(on: group.next()))
        func record(_ requirement: ConsistencyToken.Requirement, ttl: Int64 = 30_000) async throws {
            try await loop.eventLoop.flatSubmit {
                RedisConsistencyStore.record(ConsistencyToken(requirement: requirement, expires: 0), for: "id-1", ttlMilliseconds: ttl, client: loop)
            }.get()
        }
        func lookup(_ identity: String = "id-1") async throws -> ConsistencyToken.Requirement? {
            try await loop.eventLoop.flatSubmit { RedisConsistencyStore.lookup(identity, now: 0, client: loop) }.get()?.requirement
        }
        do {
            #expect(try await lookup() == nil)
            try await record(.replayed(LSN(0x5_0000_0000)))
            try await record(.replayed(LSN(0x3)))
            #expect(try await lookup() == .replayed(LSN(0x5_0000_0000)), "a later position is not lowered")
            try await record(.primaryUntil(1_700_000_000_000))
            try await record(.replayed(LSN(0x9_0000_0000)))
            #expect(try await lookup() == .primaryUntil(1_700_000_000_000), "a time pin is stricter than a position")
            #expect(try await lookup("someone-else") == nil)
            #expect(try await server.command("GET", "gw:ct:id-1") == "t:0000018bcfe56800")
            // The key lives as long as the longest token recorded.
            let ttl = Int(try await server.command("PTTL", "gw:ct:id-1")) ?? 0
            #expect(ttl > 20_000 && ttl <= 30_000)
            try await record(.replayed(LSN(1)), ttl: 50)
            #expect(Int(try await server.command("PTTL", "gw:ct:id-1")) ?? 0 > 20_000)
        } catch {
            await client.close()
            await server.stop()
            throw error
        }
        await client.close()
        await server.stop()
        try await group.shutdownGracefully()
    }
}
