import Foundation
import Redis
import Testing
import TestSupport

@testable import Gateway

/// The response cache through the gateway, against an origin whose resources change when
/// written, in process and in a real redis-server shared by two gateway instances.
@Suite(.timeLimit(.minutes(3)))
struct CacheIntegrationTests {
    /// A gateway in front of `origin` with one cached route `/items/{id}` (its `cache:` mapping
    /// given) and a write route invalidating `list:{id}` besides the written URI's own entry.
    static func gateway(origin: CacheOrigin, cache: String, redis: String? = nil, extra: String = "") async throws -> TestGateway {
        try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            event_loops: 1
            debug_headers: true
            identity: [header:authorization, ip]
            outlier_detection: { consecutive_errors: 0 }
            \(redis.map { "redis: { url: \"\($0)\", timeout: 2s }" } ?? "")
            \(extra)
            pools:
              primary: { role: primary, servers: ["{{origin}}"] }
            routes:
              - match: { path: "/items/{id}", methods: [GET, HEAD] }
                cache: \(cache)
              - match: { path: "/lists/{id}", methods: [GET] }
                cache: { ttl: 60s, key: "list:{id}", shared: true }
              - match: { path: "/items/{id}", methods: [PUT, POST, PATCH, DELETE] }
                invalidates: ["list:{id}"]
            """, ["origin": origin.url])
    }

    /// Where the entries live: each behaviour is checked with both stores.
    enum Store: String, CaseIterable, CustomTestStringConvertible {
        case local, redis
        var testDescription: String { rawValue }
    }

    /// An origin, and a redis-server when the store is Redis (its URL passed on).
    static func withOrigin(_ store: Store, _ body: (CacheOrigin, String?) async throws -> Void) async throws {
        let origin = CacheOrigin()
        try await origin.start()
        let redis = store == .redis ? try await RedisServer.start() : nil
        do { try await body(origin, redis?.url) } catch {
            await origin.stop()
            await redis?.stop()
            throw error
        }
        await origin.stop()
        await redis?.stop()
    }

    static func withGateway(_ gateway: TestGateway, _ body: () async throws -> Void) async throws {
        do { try await body() } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test(arguments: Store.allCases) func hitsMissesAgeAndExpiry(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 2s, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                let first = try await gateway.request("GET", "/items/1")
                #expect(first.status == 200 && first.header("X-Cache") == "MISS")
                #expect(first.text.hasPrefix("1 v1 n1"))
                let second = try await gateway.request("GET", "/items/1")
                #expect(second.status == 200 && second.header("X-Cache") == "HIT")
                #expect(second.text == first.text && second.header("ETag") == "\"v1\"")
                #expect(second.header("Age") == "0")
                #expect(second.header("X-Request-Id") != first.header("X-Request-Id"))
                let head = try await gateway.request("HEAD", "/items/1")
                #expect(head.status == 200 && head.header("X-Cache") == "HIT" && head.body.isEmpty)
                #expect(head.header("Content-Length") == String(first.body.count))
                #expect(origin.served("1") == 1)
                // Another query string is another key (the default key has the query).
                let other = try await gateway.request("GET", "/items/1?page=2")
                #expect(other.header("X-Cache") == "MISS" && origin.served("1") == 2)
                try await Task.sleep(for: .milliseconds(2300))
                let expired = try await gateway.request("GET", "/items/1")
                #expect(expired.header("X-Cache") == "MISS" && expired.text.hasPrefix("1 v1 n3"))
                // The store of a miss completes after its response (a Redis SET in flight).
                let stored = try await eventually { try await gateway.admin("/metrics").text.contains("gateway_cache_stores_total{result=\"stored\"} 3") }
                #expect(stored)
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_cache_requests_total{result=\"hit\"} 2"))
                #expect(metrics.contains("gateway_cache_requests_total{result=\"miss\"} 3"))
                #expect(gateway.accessLog.entries.contains { $0.metadata["cache"] == "HIT" && $0.metadata["pool"] == "cache" })
                #expect(gateway.accessLog.entries.contains { $0.metadata["cache"] == "MISS" && $0.metadata["pool"] == "primary" })
            }
        }
    }

    @Test(arguments: Store.allCases) func oneUserNeverGetsAnothersEntry(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s }", redis: redis)
            try await Self.withGateway(gateway) {
                let alice1 = try await gateway.request("GET", "/items/7", headers: ["Authorization: Bearer alice"])
                let bob1 = try await gateway.request("GET", "/items/7", headers: ["Authorization: Bearer bob"])
                let alice2 = try await gateway.request("GET", "/items/7", headers: ["Authorization: Bearer alice"])
                let bob2 = try await gateway.request("GET", "/items/7", headers: ["Authorization: Bearer bob"])
                #expect(alice1.header("X-Cache") == "MISS" && bob1.header("X-Cache") == "MISS")
                #expect(alice2.header("X-Cache") == "HIT" && bob2.header("X-Cache") == "HIT")
                #expect(alice2.text.hasSuffix("user=Bearer alice") && bob2.text.hasSuffix("user=Bearer bob"))
                #expect(origin.served("7") == 2)
            }
        }
    }

    @Test(arguments: Store.allCases) func whatIsNotStored(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s, shared: true, max_body: 1000 }", redis: redis)
            try await Self.withGateway(gateway) {
                for query in ["cookie=1", "cc=no-store", "cc=private", "status=404", "size=5000", "cc=no-cache", "vary=*"] {
                    let first = try await gateway.request("GET", "/items/n?\(query)")
                    let second = try await gateway.request("GET", "/items/n?\(query)")
                    #expect(first.header("X-Cache") == "MISS" && second.header("X-Cache") == "MISS", "\(query)")
                    if query == "size=5000" {
                        // Past max_body: delivered whole, just not stored.
                        #expect(second.body.count == 5000 && TestUpstream.isPattern(second.body))
                    }
                }
                #expect(origin.served("n") == 14)
                // A POST to a cached path is never answered from the cache.
                _ = try await gateway.request("GET", "/items/p")
                let post = try await gateway.request("POST", "/items/p", body: "{}")
                #expect(post.header("X-Cache") == nil && post.text.contains("version"))
            }
        }
    }

    @Test(arguments: Store.allCases) func theOriginsMaxAgeWinsAndClientsMayRevalidate(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                _ = try await gateway.request("GET", "/items/s?cc=s-maxage%3D2")
                #expect(try await gateway.request("GET", "/items/s?cc=s-maxage%3D2").header("X-Cache") == "HIT")
                try await Task.sleep(for: .milliseconds(2300))
                #expect(try await gateway.request("GET", "/items/s?cc=s-maxage%3D2").header("X-Cache") == "MISS")
                // Cache-Control: no-cache from the client: fetched anew, and what comes back is stored.
                let before = origin.served("s")
                let forced = try await gateway.request("GET", "/items/s?cc=s-maxage%3D2", headers: ["Cache-Control: no-cache"])
                #expect(forced.header("X-Cache") == "MISS" && origin.served("s") == before + 1)
                let after = try await gateway.request("GET", "/items/s?cc=s-maxage%3D2")
                #expect(after.header("X-Cache") == "HIT" && after.text == forced.text)
            }
        }
    }

    @Test(arguments: Store.allCases) func ifNoneMatchGets304FromTheCache(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                let first = try await gateway.request("GET", "/items/e")
                let etag = try #require(first.header("ETag"))
                let conditional = try await gateway.request("GET", "/items/e", headers: ["If-None-Match: W/\(etag)"])
                #expect(conditional.status == 304 && conditional.body.isEmpty)
                #expect(conditional.header("ETag") == etag && conditional.header("X-Cache") == "HIT")
                let mismatch = try await gateway.request("GET", "/items/e", headers: ["If-None-Match: \"v9\""])
                #expect(mismatch.status == 200 && mismatch.text == first.text)
                #expect(origin.served("e") == 1)
            }
        }
    }

    @Test(arguments: Store.allCases) func aSuccessfulWriteInvalidatesItsURIAndItsTemplates(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s, shared: true, key: \"item:{id}\" }", redis: redis)
            try await Self.withGateway(gateway) {
                _ = try await gateway.request("GET", "/items/3")
                _ = try await gateway.request("GET", "/lists/3")
                #expect(try await gateway.request("GET", "/items/3").header("X-Cache") == "HIT")
                #expect(try await gateway.request("GET", "/lists/3").header("X-Cache") == "HIT")
                // A failed write changes nothing, and invalidates nothing.
                let failed = try await gateway.request("PUT", "/items/3?status=409", body: "{}")
                #expect(failed.status == 409)
                #expect(try await gateway.request("GET", "/items/3").header("X-Cache") == "HIT")
                let write = try await gateway.request("PUT", "/items/3", body: "{}")
                #expect(write.status == 200)
                let item = try await gateway.request("GET", "/items/3")
                #expect(item.header("X-Cache") == "MISS" && item.text.hasPrefix("3 v2"))
                #expect(try await gateway.request("GET", "/lists/3").header("X-Cache") == "MISS")
                // Other items keep their entries.
                _ = try await gateway.request("GET", "/items/4")
                _ = try await gateway.request("PUT", "/items/3", body: "{}")
                #expect(try await gateway.request("GET", "/items/4").header("X-Cache") == "HIT")
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_cache_invalidations_total{result=\"ok\"} 4"))
            }
        }
    }

    @Test(arguments: Store.allCases) func concurrentMissesMakeOneUpstreamRequest(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                let bodies = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                    for _ in 0..<100 {
                        group.addTask { try await gateway.request("GET", "/items/c?delay=300") }
                    }
                    var all: [TestResponse] = []
                    for try await response in group { all.append(response) }
                    return all
                }
                #expect(bodies.count == 100 && bodies.allSatisfy { $0.status == 200 })
                #expect(Set(bodies.map(\.text)).count == 1)
                #expect(origin.served("c") == 1, "100 concurrent misses, one upstream request")
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_cache_coalesced_total 99"))
            }
        }
    }

    @Test(arguments: Store.allCases) func staleWhileRevalidateAnswersAtOnceAndRefreshesOnce(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 3s, stale_while_revalidate: 30s, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                _ = try await gateway.request("GET", "/items/w?delay=800")
                _ = try await gateway.request("PUT", "/items/x", body: "{}")  // another item: w stays
                try await Task.sleep(for: .milliseconds(3200))
                let started = ContinuousClock.now
                let stale = try await gateway.request("GET", "/items/w?delay=800")
                let elapsed = ContinuousClock.now - started
                #expect(stale.header("X-Cache") == "STALE" && stale.text.hasPrefix("w v1 n1"))
                #expect(elapsed < .milliseconds(400), "the stale answer does not wait for the 800 ms origin")
                _ = try await gateway.request("GET", "/items/w?delay=800")  // still stale, refresh in flight
                try await Task.sleep(for: .milliseconds(1200))
                let refreshed = try await gateway.request("GET", "/items/w?delay=800")
                let diagnosis = try await gateway.admin("/metrics").text.split(separator: "\n")
                    .filter { $0.hasPrefix("gateway_cache") }.joined(separator: " ")
                #expect(refreshed.header("X-Cache") == "HIT" && refreshed.text.hasPrefix("w v1 n2"),
                        "\(refreshed.header("X-Cache") ?? "-") \(refreshed.text) \(diagnosis)")
                #expect(origin.served("w") == 2, "one background refresh")
            }
        }
    }

    @Test(arguments: Store.allCases) func staleIfErrorCoversFailuresAndOutages(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 1s, stale_if_error: 60s, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                let first = try await gateway.request("GET", "/items/f")
                try await Task.sleep(for: .milliseconds(1200))
                origin.failing = true
                let onError = try await gateway.request("GET", "/items/f")
                #expect(onError.status == 200 && onError.header("X-Cache") == "STALE" && onError.text == first.text)
                // An item never cached gets the origin's error as it is.
                #expect(try await gateway.request("GET", "/items/g").status == 503)
                await origin.stop()
                let onOutage = try await gateway.request("GET", "/items/f")
                #expect(onOutage.status == 200 && onOutage.header("X-Cache") == "STALE")
                let metrics = try await gateway.admin("/metrics").text
                #expect(metrics.contains("gateway_cache_stale_if_error_total 2"))
            }
        }
    }

    // MARK: Redis

    static func withRedis(_ body: (RedisServer) async throws -> Void) async throws {
        let redis = try await RedisServer.start()
        do { try await body(redis) } catch {
            await redis.stop()
            throw error
        }
        await redis.stop()
    }

    @Test func twoInstancesShareEntriesAndInvalidations() async throws {
        try await Self.withRedis { redis in
            try await Self.withOrigin(.local) { origin, _ in
                let cache = "{ ttl: 60s, shared: true, max_body: 2MiB }"
                let a = try await Self.gateway(origin: origin, cache: cache, redis: redis.url)
                let b = try await Self.gateway(origin: origin, cache: cache, redis: redis.url)
                try await Self.withGateway(a) {
                    try await Self.withGateway(b) {
                        try await Task.sleep(for: .milliseconds(300))  // the near caches subscribe
                        // A's store reaches Redis just after its client has the response.
                        func stored(_ key: String) async throws -> Bool {
                            try await waitUntil(.seconds(5)) { try await redis.command("EXISTS", "gw:c:" + key).hasPrefix("1") } != nil
                        }
                        let miss = try await a.request("GET", "/items/r")
                        #expect(miss.header("X-Cache") == "MISS")
                        #expect(try await stored("gateway.test/items/r?"))
                        let fromRedis = try await b.request("GET", "/items/r")
                        #expect(fromRedis.header("X-Cache") == "HIT" && fromRedis.text == miss.text)
                        let nearHit = try await a.request("GET", "/items/r")
                        #expect(nearHit.header("X-Cache") == "HIT")
                        #expect(origin.served("r") == 1)
                        // A write through B: A's near copy goes too (published through Redis).
                        #expect(try await b.request("PUT", "/items/r", body: "{}").status == 200)
                        try await Task.sleep(for: .milliseconds(100))
                        let afterWrite = try await a.request("GET", "/items/r")
                        #expect(afterWrite.header("X-Cache") == "MISS" && afterWrite.text.hasPrefix("r v2"))
                        // Binary bodies survive Redis byte for byte.
                        let big = try await a.request("GET", "/items/bin?size=300000")
                        #expect(try await stored("gateway.test/items/bin?size=300000"))
                        let bigHit = try await b.request("GET", "/items/bin?size=300000")
                        #expect(bigHit.header("X-Cache") == "HIT" && bigHit.body.count == 300_000 && bigHit.body == big.body)
                        #expect(TestUpstream.isPattern(bigHit.body))
                        let keys = try await redis.command("KEYS", "gw:c:*")
                        #expect(keys.contains("gw:c:gateway.test/items/r?"))
                    }
                }
            }
        }
    }

    @Test func redisGoingAwayBypassesTheCacheAndItComesBack() async throws {
        try await Self.withRedis { redis in
            try await Self.withOrigin(.local) { origin, _ in
                let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: 60s, shared: true }", redis: redis.url)
                try await Self.withGateway(gateway) {
                    _ = try await gateway.request("GET", "/items/k")
                    #expect(try await gateway.request("GET", "/items/k").header("X-Cache") == "HIT")
                    await redis.kill()
                    var statuses: [Int] = []
                    for _ in 0..<20 { statuses.append(try await gateway.request("GET", "/items/k").status) }
                    #expect(statuses.allSatisfy { $0 == 200 }, "Redis down costs no request")
                    let bypassed = try await gateway.request("GET", "/items/k")
                    #expect(bypassed.header("X-Cache") == "BYPASS")
                    let metrics = try await gateway.admin("/metrics").text
                    #expect(metrics.contains("gateway_redis_connected 0"))
                    try await redis.launch()
                    var back = false
                    for _ in 0..<100 where !back {
                        try await Task.sleep(for: .milliseconds(100))
                        back = try await gateway.request("GET", "/items/k").header("X-Cache") == "HIT"
                    }
                    #expect(back, "cached again once Redis is back")
                }
            }
        }
    }

    @Test func badCacheConfigNamesTheKey() throws {
        func error(_ yaml: String) -> ConfigError? { configError(addingTo: "pools:\n  primary: { servers: [http://10.0.0.1:8000] }\n", yaml) }
        let noTTL = error("routes:\n  - match: { path: /a }\n    cache: { shared: true }\n")
        #expect(noTTL?.key == "routes[0].cache" && noTTL?.line == 5 && noTTL?.message.contains("'ttl'") == true, "\(String(describing: noTTL))")
        #expect(error("routes:\n  - match: { path: /a }\n    cache: { ttl: 100ms }\n")?.key == "routes[0].cache.ttl")
        #expect(error("routes:\n  - match: { path: \"/a/{id}\" }\n    cache: { ttl: 1m, key: \"x:{user}\" }\n")?.message.contains("{user}") == true)
        #expect(error("routes:\n  - match: { path: /a }\n    invalidates: [\"x:{nope}\"]\n")?.key.hasPrefix("routes[0].invalidates") == true)
        #expect(error("redis: http://localhost:6379\n")?.key == "redis")
        #expect(error("cache: { max_size: 10k }\n")?.key == "cache.max_size")
    }

    /// RFC 9111 §4.3: a stale entry with a validator is revalidated with a conditional request;
    /// the origin's 304 refreshes it, its 200 replaces it (both stores, a real origin).
    @Test(arguments: Store.allCases) func staleEntriesAreRevalidatedWithTheOrigin(store: Store) async throws {
        try await Self.withOrigin(store) { origin, redis in
            let gateway = try await Self.gateway(origin: origin, cache: "{ ttl: origin, shared: true }", redis: redis)
            try await Self.withGateway(gateway) {
                // max-age=0 with an ETag: stored, stale at once, revalidated on every use.
                let first = try await gateway.request("GET", "/items/5?cc=max-age=0&cond=1")
                #expect(first.header("X-Cache") == "MISS" && first.text.hasPrefix("5 v1 n1"))
                for _ in 0..<2 {
                    let again = try await gateway.request("GET", "/items/5?cc=max-age=0&cond=1")
                    #expect(again.status == 200 && again.header("X-Cache") == "REVALIDATED")
                    #expect(again.text == first.text)
                }
                #expect(origin.state.notModified == 2 && origin.served("5") == 1)
                // The resource changes at the origin (not through the gateway): its new version
                // replaces the entry.
                let write = try await RawClient.request("PUT", origin.url + "/items/5", body: "{}")
                #expect(write.status == 200)
                let changed = try await gateway.request("GET", "/items/5?cc=max-age=0&cond=1")
                #expect(changed.status == 200 && changed.text.hasPrefix("5 v2"))
                #expect(origin.served("5") == 2)
            }
        }
    }
}
