import Foundation
import Testing
import TestSupport

@testable import Gateway

/// `rediss://` against a real redis-server listening with TLS (Debian's is built with it): the
/// shared cache and rate limits work over it, and a server whose certificate the gateway does
/// not trust is never used (requests go on without Redis, as when it is down).
@Suite(.serialized, .timeLimit(.minutes(2))) struct RedisTLSTests {
    static let certificates: TestCertificates = {
        let certificates = try! TestCertificates()
        try! certificates.makeServer("redis", dnsNames: ["cache.internal"])
        return certificates
    }()

    static func withRedisGateway(_ redisTLS: String, _ body: (TestGateway, RedisServer) async throws -> Void) async throws {
        let c = certificates
        let redis = try await RedisServer.start(tls: (c.certFile("redis"), c.keyFile("redis")))
        let upstream = TestUpstream()
        try await upstream.start()
        do {
            let gateway = try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                event_loops: 1
                debug_headers: true
                redis: { url: "\(redis.tlsURL)", timeout: 2s, tls: \(redisTLS) }
                rate_limits:
                  policies: { api: { limit: 1000, period: 1m, store: redis } }
                pools:
                  primary: { role: primary, servers: ["\(upstream.url)"] }
                routes:
                  - match: { path: "/items/{id}", methods: [GET] }
                    cache: { ttl: 60s, shared: true }
                    rate_limit: api
                """)
            do { try await body(gateway, redis) } catch {
                await gateway.stop()
                throw error
            }
            await gateway.stop()
        } catch {
            await upstream.stop()
            await redis.stop()
            throw error
        }
        await upstream.stop()
        await redis.stop()
    }

    @Test func theCacheAndRateLimitsWorkOverTLS() async throws {
        try await Self.withRedisGateway("{ ca_file: \(Self.certificates.caFile), sni: cache.internal }") { gateway, redis in
            let first = try await gateway.request("GET", "/items/7")
            #expect(first.status == 200 && first.header("X-Cache") == "MISS")
            // The entry is stored after the response: wait until Redis has it.
            let stored = try await waitUntil(.seconds(5)) { try await redis.command("DBSIZE") != "0" }
            #expect(stored != nil, "nothing reached Redis over TLS")
            let second = try await gateway.request("GET", "/items/7")
            #expect(second.header("X-Cache") == "HIT", "\(second.headers)")
            #expect(second.header("RateLimit-Policy") != nil)
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_redis_connected 1\n"), "\(metrics)")
        }
    }

    @Test func anUntrustedRedisCertificateIsNeverUsed() async throws {
        try await Self.withRedisGateway("{ ca_file: \(Self.certificates.otherCAFile) }") { gateway, redis in
            for _ in 0..<3 {
                let response = try await gateway.request("GET", "/items/8")
                #expect(response.status == 200, "requests go on without Redis")
                #expect(response.header("X-Cache") != "HIT")
            }
            #expect(try await redis.command("DBSIZE") == "0")
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_redis_connected 0\n") && !metrics.contains("gateway_redis_connects_total{result=\"failed\"} 0\n"),
                    "\(metrics)")
        }
    }
}
