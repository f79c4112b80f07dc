import Logging
import NIOCore
import NIOPosix
import Testing
import TestSupport

@testable import Redis

/// Cluster slots, URLs of the three topologies and the slot map, without I/O.
@Suite struct RedisTopologyUnitTests {
    @Test func slotsAreRedisClustersCRC16WithHashTags() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        #expect(RedisSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(RedisSlot.of("foo") == 12182)
        #expect(RedisSlot.of("bar") == 5061)
        // A hash tag: only what is inside the first non-empty braces counts.
        #expect(RedisSlot.of("{user1000}.following") == RedisSlot.of("{user1000}.followers"))
        #expect(RedisSlot.of("{user1000}.following") == RedisSlot.of("user1000"))
        #expect(RedisSlot.of("foo{}{bar}") == Int(RedisSlot.crc16(Array("foo{}{bar}".utf8)) % 16384))
        #expect(RedisSlot.of("foo{{bar}}zap") == RedisSlot.of("{bar"))
        #expect(RedisCommand(key: "GET", "foo").slot == 12182)
        #expect(RedisCommand("PING").slot == nil)
    }

    @Test func urlsNameTheTopology() throws {
        let sentinel = try RedisURL("redis-sentinel://:secret@10.0.0.1,10.0.0.2:26380,[::1]/cache/2")
        #expect(sentinel.topology == .sentinel(master: "cache"))
        #expect(sentinel.endpoints == [RedisEndpoint(host: "10.0.0.1", port: 26379), RedisEndpoint(host: "10.0.0.2", port: 26380),
                                       RedisEndpoint(host: "::1", port: 26379)])
        #expect(sentinel.password == "secret" && sentinel.database == 2)
        #expect(sentinel.description == "redis-sentinel://:***@10.0.0.1:26379,10.0.0.2:26380,[::1]:26379/cache/2")
        let cluster = try RedisURL("rediss-cluster://n1:7000,n2")
        #expect(cluster.topology == .cluster && cluster.tls)
        #expect(cluster.endpoints == [RedisEndpoint(host: "n1", port: 7000), RedisEndpoint(host: "n2", port: 6379)])
        #expect(cluster.description == "rediss-cluster://n1:7000,n2:6379")
        #expect(try RedisURL("redis://h:1").topology == .standalone)
        for bad in ["redis://a,b", "redis-sentinel://h1,h2", "redis-sentinel://h/", "redis-cluster://h/1", "redis-cluster://h,", "redis-sentinel://h/m/x"] {
            #expect(throws: RedisURL.ParseError.self, "\(bad)") { try RedisURL(bad) }
        }
    }

    @Test func theSlotMapIsReadFromClusterSlotsAndMovedByRedirects() throws {
        func node(_ host: String, _ port: Int64) -> RedisValue { .array([.bulk(ByteBuffer(string: host)), .integer(port), .bulk(ByteBuffer(string: "id"))]) }
        let reply = RedisValue.array([
            .array([.integer(0), .integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            .array([.integer(5461), .integer(10922), node("", 7001)]),
            .array([.integer(10923), .integer(16383), node("127.0.0.2", 7002)]),
        ])
        var map = try RedisClusterMap(clusterSlots: reply, askedHost: "10.1.1.1")
        #expect(map.master(ofSlot: 0) == RedisEndpoint(host: "127.0.0.1", port: 7000))
        #expect(map.master(ofSlot: 5461) == RedisEndpoint(host: "10.1.1.1", port: 7001))
        #expect(map.master(ofSlot: 16383) == RedisEndpoint(host: "127.0.0.2", port: 7002))
        #expect(map.uncoveredSlots == 0 && map.masters.count == 3)
        let moved = try #require(RedisClusterMap.redirect("MOVED 3999 127.0.0.1:7002"))
        #expect(!moved.ask && moved.slot == 3999 && moved.endpoint == RedisEndpoint(host: "127.0.0.1", port: 7002))
        map.assign(moved.slot, to: moved.endpoint)
        #expect(map.master(ofSlot: 3999)?.port == 7002 && map.master(ofSlot: 3998)?.port == 7000)
        #expect(RedisClusterMap.redirect("ASK 1 ::1:7005")?.endpoint == RedisEndpoint(host: "::1", port: 7005))
        #expect(RedisClusterMap.redirect("ASK 1 ::1:7005")?.ask == true)
        for bad in ["MOVED 99999 h:1", "MOVED x h:1", "ERR MOVED", "MOVED 1 h"] { #expect(RedisClusterMap.redirect(bad) == nil) }
        #expect(throws: RedisError.self) { try RedisClusterMap(clusterSlots: .array([.array([.integer(0)])]), askedHost: "h") }
        #expect(RedisClusterMap().uncoveredSlots == RedisSlot.count)
    }
}

/// The client against a real Redis Cluster (three masters, three replicas) and a real
/// sentinel set: commands reach their slot's master, redirects are followed, failovers are
/// followed.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RedisTopologyTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    func client(_ url: String) throws -> RedisClient {
        RedisClient(settings: .init(url: try RedisURL(url), connectTimeout: .milliseconds(300), commandTimeout: .milliseconds(500),
                                    breaker: .init(threshold: 3, baseOpenNanoseconds: 100_000_000, maxOpenNanoseconds: 500_000_000)),
                    eventLoops: Array(Self.group.makeIterator()), logger: Logger(label: "redis-topology-test"))
    }

    /// Retries `body` until it succeeds (a failover in progress), for up to `seconds`.
    func eventually<T>(seconds: Int = 20, _ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            do { return try await body() } catch {
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    @Test func clusterCommandsGoToTheirSlotsMasterAndFollowRedirectsAndFailovers() async throws {
        let cluster = try await RedisCluster.start()
        let client = try client(cluster.seedURL)
        do {
            // Keys spread over every master, written through both loops' connections.
            for index in 0..<120 {
                #expect(try await client.send("SET", "k\(index)", "v\(index)") == .status("OK"))
            }
            for index in stride(from: 0, to: 120, by: 7) {
                let owner = try #require(try await cluster.master(ofSlot: RedisSlot.of("k\(index)")))
                #expect(try await owner.command("GET", "k\(index)") == "v\(index)")
            }
            var stats = await client.stats()
            #expect(stats.redirects == 0, "the slot map sent every command to its master")
            #expect(stats.topologyRefreshes >= 1)
            // Scripts run on their key's node (EVALSHA, NOSCRIPT → EVAL per node).
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            for index in 0..<6 { #expect(try await client.evalScript(script, keys: [.string("n\(index)")], arguments: [3]) == .integer(3)) }

            // A slot moves to another master (as a resharding does): ASK while it migrates,
            // MOVED once it is there.
            let key = "k5"
            let slot = RedisSlot.of(key)
            let source = try #require(try await cluster.master(ofSlot: slot))
            let target = try #require(try await cluster.masters().first { $0.port != source.port })
            let sourceID = try await source.command("CLUSTER", "MYID")
            let targetID = try await target.command("CLUSTER", "MYID")
            _ = try await target.command("CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
            _ = try await source.command("CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID)
            _ = try await source.command("MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS", key)
            #expect(try await client.send("GET", .string(key)) == .bulk(ByteBuffer(string: "v5")))
            stats = await client.stats()
            #expect(stats.redirects >= 1, "ASK followed")
            for node in cluster.nodes { _ = try? await node.command("CLUSTER", "SETSLOT", String(slot), "NODE", targetID) }
            let before = stats.redirects
            for _ in 0..<4 { #expect(try await client.send("GET", .string(key)) == .bulk(ByteBuffer(string: "v5"))) }
            stats = await client.stats()
            #expect(stats.redirects > before, "MOVED followed")
            #expect(stats.redirects <= before + 4)

            // The master of a key's slot dies: its replica takes over and the client follows.
            let victim = try #require(try await cluster.master(ofSlot: RedisSlot.of("k0")))
            try await cluster.waitForReplication()
            await victim.kill()
            let value = try await eventually { try await client.send("GET", "k0") }
            #expect(value == .bulk(ByteBuffer(string: "v0")), "the replica had the key")
            #expect(try await eventually { try await client.send("SET", "k0", "after") } == .status("OK"))
            let newOwner = try #require(try await cluster.master(ofSlot: RedisSlot.of("k0")))
            #expect(newOwner.port != victim.port)
            #expect(try await newOwner.command("GET", "k0") == "after")
            stats = await client.stats()
            #expect(stats.masterChanges >= 1)
        } catch {
            await client.close()
            await cluster.stop()
            throw error
        }
        await client.close()
        await cluster.stop()
    }

    @Test func sentinelFindsTheMasterAndFollowsAFailover() async throws {
        let set = try await RedisSentinelSet.start()
        let client = try client(set.url)
        do {
            #expect(try await client.send("SET", "a", "1") == .status("OK"))
            #expect(try await set.master.command("GET", "a") == "1")
            #expect(try await client.send("GET", "a") == .bulk(ByteBuffer(string: "1")))
            try await set.waitForReplication()
            await set.master.kill()
            // The sentinels promote the replica; the client moves to it and writes there.
            #expect(try await eventually(seconds: 30) { try await client.send("SET", "b", "2") } == .status("OK"))
            #expect(try await set.currentMasterPort() == set.replica.port)
            #expect(try await set.replica.command("GET", "b") == "2")
            #expect(try await client.send("GET", "a") == .bulk(ByteBuffer(string: "1")))
            let stats = await client.stats()
            #expect(stats.masterChanges >= 1)
        } catch {
            await client.close()
            await set.stop()
            throw error
        }
        await client.close()
        await set.stop()
    }
}
