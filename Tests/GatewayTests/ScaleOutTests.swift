import Foundation
import NIOConcurrencyHelpers
import Testing
import TestSupport

@testable import Redis

@testable import Gateway

/// Several gateway instances sharing one Redis Cluster (three masters, three replicas) or one
/// sentinel-watched master: cache entries and invalidations, one rate limit, read-your-writes
/// tokens by identity; a Redis master killed under load costs no 5xx.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct ScaleOutTests {
    static let secret = "scale-out-test-secret-0123456789"

    /// A gateway instance on `redis`, in front of `origin` as both the primary and the replica
    /// pool (`X-Gateway-Pool` tells which one served).
    static func gateway(redis: String, origin: CacheOrigin, leaseShare: String = "0.01") async throws -> TestGateway {
        try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 2
            debug_headers: true
            identity: [header:authorization, ip]
            outlier_detection: { consecutive_errors: 0 }
            redis: { url: "\(redis)", timeout: 300ms, connect_timeout: 300ms }
            consistency: { mode: time, secret: "\(secret)", store: redis, sticky_for: 20s, token_ttl: 30s }
            rate_limits:
              lease_share: \(leaseShare)
              policies:
                shared: { limit: 300, period: 60s, key: "header:x-client" }
                cold: { limit: 2, period: 60s, key: "header:x-client" }
            regions: { default: us-east }
            pools:
              primary: { role: primary, region: us-east, servers: ["{{origin}}"] }
              replicas: { role: replica, region: us-east, servers: ["{{origin}}"] }
            routes:
              - match: { path: "/items/{id}", methods: [GET, HEAD] }
                cache: { ttl: 60s, shared: true }
              - match: { path: "/limited/{id}" }
                rate_limit: shared
              - match: { path: "/cold/{id}" }
                rate_limit: cold
            """, ["origin": origin.url])
    }

    /// `count` gateways on `redis` and an origin; everything stopped after `body`.
    static func withFleet(_ count: Int, redis: String, leaseShare: String = "0.01",
                          _ body: ([TestGateway], CacheOrigin) async throws -> Void) async throws {
        let origin = CacheOrigin()
        try await origin.start()
        var gateways: [TestGateway] = []
        do {
            for _ in 0..<count { gateways.append(try await gateway(redis: redis, origin: origin, leaseShare: leaseShare)) }
            try await Task.sleep(for: .milliseconds(300))  // near caches subscribe
            try await body(gateways, origin)
        } catch {
            for gateway in gateways { await gateway.stop() }
            await origin.stop()
            throw error
        }
        for gateway in gateways { await gateway.stop() }
        await origin.stop()
    }

    /// `perGateway` keep-alive connections on each gateway, each sending `requests` requests
    /// made by `target` (connection number, request number); the statuses and elapsed time.
    static func load(_ gateways: [TestGateway], perGateway: Int, requests: Int, headers: [String] = [],
                     target: @escaping @Sendable (Int, Int) -> String) async -> (statuses: [Int], seconds: Double) {
        let started = ContinuousClock.now
        let statuses = await withTaskGroup(of: [Int].self) { group in
            for (g, gateway) in gateways.enumerated() {
                for c in 0..<perGateway {
                    let port = gateway.proxyPort
                    group.addTask {
                        var seen: [Int] = []
                        var client: RawClient?
                        for r in 0..<requests {
                            do {
                                if client == nil { client = try await RawClient.connect(port: port) }
                                let extra = headers.map { $0 + "\r\n" }.joined()
                                try await client!.send("GET \(target(g * perGateway + c, r)) HTTP/1.1\r\nHost: gateway.test\r\n\(extra)\r\n")
                                seen.append(try await client!.readResponse().status)
                            } catch {
                                seen.append(0)
                                await client?.close()
                                client = nil
                            }
                        }
                        await client?.close()
                        return seen
                    }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        let elapsed = ContinuousClock.now - started
        return (statuses, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    @Test func threeGatewaysOnAClusterShareEntriesInvalidationsLimitsAndTokens() async throws {
        let cluster = try await RedisCluster.start()
        do {
            try await Self.withFleet(3, redis: cluster.seedURL) { gateways, origin in
                let (a, b, c) = (gateways[0], gateways[1], gateways[2])
                // Entries: stored by A, a hit on B and C; a write through C drops it everywhere.
                let miss = try await a.request("GET", "/items/s1")
                #expect(miss.header("X-Cache") == "MISS")
                let stored = try await waitUntil(.seconds(5)) { try await b.request("GET", "/items/s1").header("X-Cache") == "HIT" }
                #expect(stored != nil)
                #expect(try await c.request("GET", "/items/s1").header("X-Cache") == "HIT")
                #expect(origin.served("s1") == 1)
                #expect(try await c.request("PUT", "/items/s1", body: "{}").status == 200)
                try await Task.sleep(for: .milliseconds(200))
                for gateway in [a, b] {
                    let after = try await gateway.request("GET", "/items/s1")
                    #expect(after.text.hasPrefix("s1 v2"), "\(after.text)")
                }
                // The entry is in the cluster, on its slot's master.
                let key = "gw:c:gateway.test/items/s1?"
                let owner = try #require(try await cluster.master(ofSlot: RedisSlot.of(key)))
                #expect(try await owner.command("EXISTS", key) == "1")

                // Read-your-writes without cookies: a write through A by one API key pins that
                // key's next read through B to the primary; another key reads from a replica.
                let write = try await a.request("POST", "/orders", headers: ["Authorization: Bearer key-1"], body: "{}")
                #expect(write.status == 200 && write.header("X-Gateway-Pool") == "primary")
                let pinned = try await b.request("GET", "/orders", headers: ["Authorization: Bearer key-1"])
                #expect(pinned.header("X-Gateway-Pool") == "primary")
                #expect(pinned.header("X-Gateway-Consistency") == "primary-pinned")
                let other = try await c.request("GET", "/orders", headers: ["Authorization: Bearer key-2"])
                #expect(other.header("X-Gateway-Pool") == "replicas")

                // One limit over three instances: 3,000 requests for one key, 300 a minute.
                let result = await Self.load(gateways, perGateway: 4, requests: 250, headers: ["X-Client: hot"]) { _, _ in "/limited/x" }
                let passed = result.statuses.count { $0 == 200 }
                let limited = result.statuses.count { $0 == 429 }
                #expect(passed + limited == 3000, "statuses: \(Set(result.statuses))")
                // The bound: what refilled meanwhile (one per 200 ms), ± 3 instances × 2 loops ×
                // a lease of 1% of 300 (3).
                let refilled = Int((result.seconds / 0.2).rounded(.up))
                #expect(passed >= 300 - 18 && passed <= 300 + refilled + 18, "passed \(passed) in \(result.seconds) s")
                // Leases: far fewer Redis calls than requests.
                var calls = 0
                for gateway in gateways {
                    let metrics = try await gateway.admin("/metrics").text
                    calls += metrics.split(separator: "\n").first { $0.hasPrefix("gateway_rate_limit_redis_calls_total{policy=\"shared\"}") }
                        .flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
                }
                #expect(calls > 0 && calls < 1500, "\(calls) Redis calls for 3,000 requests")

                // A cold key is exact: two a minute, whichever instances they reach.
                var coldStatuses: [Int] = []
                for gateway in [a, b, c, a] {
                    coldStatuses.append(try await gateway.request("GET", "/cold/1", headers: ["X-Client: cold-1"]).status)
                }
                #expect(coldStatuses == [200, 200, 429, 429])
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func aClusterMasterKilledUnderLoadCostsNo5xx() async throws {
        let cluster = try await RedisCluster.start()
        do {
            try await Self.withFleet(3, redis: cluster.seedURL) { gateways, origin in
                let killer = Task { () -> [ClosedRange<Int>] in
                    try await Task.sleep(for: .milliseconds(700))
                    try await cluster.waitForReplication()
                    let victim = try #require(try await cluster.masters().first)
                    let slots = try await cluster.slots(of: victim)
                    await victim.kill()
                    return slots
                }
                // Cached reads over 64 keys (every master has some) and limited requests.
                let result = await Self.load(gateways, perGateway: 3, requests: 400, headers: ["X-Client: load"]) { c, r in
                    r % 2 == 0 ? "/items/k\((c * 7 + r) % 64)" : "/limited/x\(c)"
                }
                // Items whose entries live on the victim's slots, for after the failover.
                let victimSlots = try await killer.value
                try #require(!victimSlots.isEmpty)
                var nextItem = 0
                func movedItem() -> String {
                    while true {
                        nextItem += 1
                        let slot = RedisSlot.of("gw:c:gateway.test/items/moved-\(nextItem)?")
                        if victimSlots.contains(where: { $0.contains(slot) }) { return "moved-\(nextItem)" }
                    }
                }
                #expect(result.statuses.allSatisfy { $0 == 200 || $0 == 429 }, "statuses: \(Set(result.statuses))")
                #expect(result.statuses.count == 3 * 3 * 400)
                // The cluster failed over; the gateways followed: an entry on the failed
                // master's slots is stored by one and found by another.
                try await cluster.waitUntilHealthy()
                let sharedItem = movedItem()
                let shared = try await waitUntil(.seconds(15)) { () -> Bool in
                    _ = try await gateways[0].request("GET", "/items/\(sharedItem)")
                    try await Task.sleep(for: .milliseconds(100))
                    return try await gateways[1].request("GET", "/items/\(sharedItem)").header("X-Cache") == "HIT"
                }
                #expect(shared != nil)
                // Every instance saw the new master. A map read from a node that has not yet
                // heard of the promotion (gossip takes a moment) still names the old one, so
                // each instance is asked again, with reads of new items (no near-cache entry) on
                // the failed slots, until it has.
                for (g, gateway) in gateways.enumerated() {
                    let followed = try await waitUntil(.seconds(10)) { () -> Bool in
                        _ = try await gateway.request("GET", "/items/\(movedItem())")
                        let metrics = try await gateway.admin("/metrics").text
                        let changes = metrics.split(separator: "\n").first { $0.hasPrefix("gateway_redis_master_changes_total ") }
                            .flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
                        return changes > 0
                    }
                    #expect(followed != nil, "gateway \(g) still names the killed master")
                }
                _ = origin
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func aSentinelFailoverUnderLoadCostsNo5xx() async throws {
        let set = try await RedisSentinelSet.start()
        do {
            try await Self.withFleet(2, redis: set.url) { gateways, _ in
                let miss = try await gateways[0].request("GET", "/items/before")
                #expect(miss.header("X-Cache") == "MISS")
                let hit = try await waitUntil(.seconds(5)) { try await gateways[1].request("GET", "/items/before").header("X-Cache") == "HIT" }
                #expect(hit != nil)
                let killer = Task {
                    try await Task.sleep(for: .milliseconds(500))
                    try await set.waitForReplication()
                    await set.master.kill()
                }
                let result = await Self.load(gateways, perGateway: 3, requests: 500, headers: ["X-Client: load"]) { c, r in
                    r % 2 == 0 ? "/items/k\((c + r) % 32)" : "/limited/x\(c)"
                }
                try await killer.value
                #expect(result.statuses.allSatisfy { $0 == 200 || $0 == 429 }, "statuses: \(Set(result.statuses))")
                // The replica is master now, and the gateways write to it.
                let promoted = try await waitUntil(.seconds(30)) { try await set.currentMasterPort() == set.replica.port }
                #expect(promoted != nil)
                let shared = try await waitUntil(.seconds(15)) { () -> Bool in
                    let id = "after-\(UUID().uuidString.prefix(6))"
                    _ = try await gateways[0].request("GET", "/items/\(id)")
                    try await Task.sleep(for: .milliseconds(100))
                    return try await gateways[1].request("GET", "/items/\(id)").header("X-Cache") == "HIT"
                }
                #expect(shared != nil)
                #expect(try await set.replica.command("DBSIZE") != "0")
            }
        } catch {
            await set.stop()
            throw error
        }
        await set.stop()
    }
}

