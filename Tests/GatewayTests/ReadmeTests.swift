import Foundation
import Testing
import Cache
import TestSupport

@testable import Gateway

/// The README's configuration reference must be a file the gateway accepts, with the defaults
/// it claims.
@Suite struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func yamlBlock(after heading: String) throws -> String {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: heading))
        let start = try #require(readme.range(of: "```yaml\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        return String(readme[start.upperBound..<end.lowerBound])
    }

    @Test func configurationReferenceIsValidAndShowsTheDefaults() throws {
        let config = try ConfigLoader.parse(yaml: try yamlBlock(after: "## Configuration reference"), file: "README.md")
        let defaults = try ConfigLoader.parse(yaml: "pools:\n  primary: { servers: [http://10.0.0.1:8000] }\n")
        #expect(config.listen == defaults.listen)
        #expect(config.admin == defaults.admin)
        #expect(config.eventLoops == defaults.eventLoops)
        #expect(config.debugHeaders == defaults.debugHeaders)
        #expect(config.accessLog == defaults.accessLog)
        #expect(config.limits.maxHeaderSize == defaults.limits.maxHeaderSize)
        #expect(config.limits.maxHeaders == defaults.limits.maxHeaders)
        #expect(config.limits.maxBodySize == defaults.limits.maxBodySize)
        #expect(config.limits.requestBuffering == defaults.limits.requestBuffering)
        #expect(config.timeouts.clientHeader == defaults.timeouts.clientHeader)
        #expect(config.timeouts.clientBody == defaults.timeouts.clientBody)
        #expect(config.timeouts.keepalive == defaults.timeouts.keepalive)
        #expect(config.timeouts.send == defaults.timeouts.send)
        #expect(config.timeouts.drain == defaults.timeouts.drain)
        #expect(config.upstream.connectTimeout == defaults.upstream.connectTimeout)
        #expect(config.upstream.responseTimeout == defaults.upstream.responseTimeout)
        #expect(config.upstream.idleTimeout == defaults.upstream.idleTimeout)
        #expect(config.upstream.maxConnections == defaults.upstream.maxConnections)
        #expect(config.upstream.queueTimeout == defaults.upstream.queueTimeout)
        #expect(config.health.interval == defaults.health.interval)
        #expect(config.health.timeout == defaults.health.timeout)
        #expect(config.health.rise == defaults.health.rise)
        #expect(config.health.fall == defaults.health.fall)
        #expect(config.health.jitter == defaults.health.jitter)
        #expect(config.health.maxLag == defaults.health.maxLag)
        #expect(config.health.databaseInterval == defaults.health.databaseInterval)
        #expect(config.health.databaseTimeout == defaults.health.databaseTimeout)
        #expect(config.health.databaseFall == defaults.health.databaseFall)
        #expect(config.outlierDetection.consecutiveErrors == defaults.outlierDetection.consecutiveErrors)
        #expect(config.outlierDetection.baseEjectionTime == defaults.outlierDetection.baseEjectionTime)
        #expect(config.outlierDetection.maxEjectionTime == defaults.outlierDetection.maxEjectionTime)
        #expect(config.outlierDetection.maxEjectedPercent == defaults.outlierDetection.maxEjectedPercent)
        #expect(config.retries.attempts == defaults.retries.attempts)
        #expect(config.retries.budgetPercent == defaults.retries.budgetPercent)
        #expect(config.retries.minPerSecond == defaults.retries.minPerSecond)
        #expect(config.consistency.mode == .lsn)
        #expect(config.consistency.stickyFor == defaults.consistency.stickyFor)
        #expect(config.consistency.maxWait == defaults.consistency.maxWait)
        #expect(config.consistency.tokenTTL == defaults.consistency.tokenTTL)
        #expect(config.consistency.cookie == defaults.consistency.cookie)
        #expect(config.consistency.header == defaults.consistency.header)
        #expect(config.identity == defaults.identity)
        #expect(config.cache.maxSize == defaults.cache.maxSize)
        #expect(config.cache.nearCache == defaults.cache.nearCache)
        #expect(config.cache.lockTimeout == defaults.cache.lockTimeout)
        #expect(config.cache.keyPrefix == defaults.cache.keyPrefix)
        #expect(config.redis?.connectTimeout == .milliseconds(500))
        #expect(config.redis?.timeout == .milliseconds(100))
        let cached = try #require(config.routes.first { $0.cache != nil }?.cache)
        #expect(cached.key.text == CacheKeyTemplate.defaultText)
        // Not set by default: the origin's own directives decide (with ttl: none are served stale).
        #expect(cached.staleWhileRevalidate == nil && cached.staleIfError == nil)
        #expect(config.cache.controlHeader == defaults.cache.controlHeader)
        #expect(cached.maxBody == ByteSize(1024 * 1024) && cached.shared == false && cached.statuses == [200])
        #expect(config.routes.contains { !$0.invalidates.isEmpty })
        #expect(config.rateLimits.fallbackShare == defaults.rateLimits.fallbackShare)
        #expect(config.rateLimits.maxKeys == defaults.rateLimits.maxKeys)
        let login = try #require(config.rateLimits.policies.first { $0.name == "login" }?.policy)
        #expect(login.burst == 0 && login.key == .ip && login.ipv6Prefix == 64 && login.cost == 1)
        #expect(config.routes.contains { $0.rateLimit == "login" })
        #expect(config.consistency.store == defaults.consistency.store)
        #expect(config.consistency.cookieSecure == defaults.consistency.cookieSecure)
        #expect(config.tracing == defaults.tracing)
    }

    @Test func demoConfigIsValid() throws {
        // The demo's HTTPS listener reads the files its script makes.
        let tls = NSTemporaryDirectory() + "demo-tls-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: tls) }
        let made = try Shell.run(Self.root.appendingPathComponent("scripts/demo-certificates").path + " " + tls)
        #expect(made.status == 0, "\(made.output)")
        let environment = [
            "API_US_EAST_URL": "http://127.0.0.1:8001", "API_EU_WEST_URL": "http://127.0.0.1:8002",
            "API_AP_SOUTHEAST_URL": "http://127.0.0.1:8003",
            "PRIMARY_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/app",
            "EU_WEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:5433/app",
            "AP_SOUTHEAST_DATABASE_URL": "postgresql://postgres@127.0.0.1:5434/app",
            "DEMO_TLS_DIR": tls,
        ]
        let config = try ConfigLoader.load(path: Self.root.appendingPathComponent("config/demo.yaml").path, environment: environment)
        #expect(config.pools.map(\.name) == ["primary", "eu-west", "ap-southeast"])
        #expect(config.listeners.count == 2 && config.listeners[1].material?.identities.first?.names == ["localhost"])
        #expect(config.warnings.isEmpty)
    }
}
