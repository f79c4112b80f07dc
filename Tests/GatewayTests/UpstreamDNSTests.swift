import Foundation
import Testing
import TestSupport
@testable import Gateway

@Suite(.serialized) struct UpstreamDNSTests {
    /// Until dnsmasq answers (it starts in a few milliseconds).
    static func ready(_ dns: Dnsmasq, name: String) async throws -> DNSResolver.Answer? {
        let resolver = DNSResolver(servers: [dns.server], timeoutMilliseconds: 200, tries: 1)
        var answer: DNSResolver.Answer?
        _ = try await waitUntil(.seconds(5)) {
            answer = try? resolver.lookup(name)
            return answer != nil
        }
        return answer
    }

    @Test func cAresReportsEveryAddressAndTheTTL() async throws {
        let dns = try Dnsmasq()
        defer { dns.stop() }
        try dns.setHosts([("127.0.0.3", "api.test"), ("127.0.0.2", "api.test"), ("::1", "api.test")])
        let answer = try await Self.ready(dns, name: "api.test")
        #expect(answer == DNSResolver.Answer(addresses: ["127.0.0.2", "127.0.0.3", "::1"], ttlSeconds: 1))
        let ipv4 = DNSResolver(servers: [dns.server], timeoutMilliseconds: 200, tries: 1, family: AF_INET)
        #expect(try ipv4.lookup("api.test").addresses == ["127.0.0.2", "127.0.0.3"])

        let resolver = DNSResolver(servers: [dns.server], timeoutMilliseconds: 200, tries: 1)
        #expect(throws: DNSResolver.Failure.self) { try resolver.lookup("missing.test") }
        dns.stop()
        let started = ContinuousClock.now
        let failure = #expect(throws: DNSResolver.Failure.self) { try resolver.lookup("api.test") }
        #expect(ContinuousClock.now - started < .seconds(3), "a dead DNS server fails within its timeout")
        #expect(failure?.description.contains("api.test") == true)
    }

    /// A pool given by host name follows its addresses under load: an address added becomes a
    /// server, a move (the old address still up until the new one is in) loses nothing, and
    /// with the DNS server gone the last addresses stay.
    @Test func aPoolFollowsItsHostAddressesUnderLoad() async throws {
        let port = try freePort()
        let upstreams = [TestUpstream(name: "u2"), TestUpstream(name: "u3"), TestUpstream(name: "u4")]
        for (index, upstream) in upstreams.enumerated() {
            try await upstream.start(port: port, host: "127.0.0.\(index + 2)")
        }
        let dns = try Dnsmasq()
        try dns.setHosts([("127.0.0.2", "api.test")])
        #expect(try await Self.ready(dns, name: "api.test") != nil)
        let proxy = try freePort(), admin = try freePort()
        let file = NSTemporaryDirectory() + "dns-\(UUID().uuidString).yaml"
        try """
            listen: 127.0.0.1:\(proxy)
            admin: 127.0.0.1:\(admin)
            debug_headers: true
            dns: { servers: ["\(dns.server)"], resolve: 1s, timeout: 200ms, tries: 1 }
            pools:
              api: { servers: ["http://api.test:\(port)"] }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let gateway = try await TestGateway.start(path: file)
        let load = LoadWorkers(port: proxy, keepAlive: 4, newConnection: 1) { _ in ("GET", "/name", "") }
        func served(by name: String) -> Int { load.recorded.filter { $0.upstream == name }.count }
        try await Task.sleep(for: .milliseconds(300))
        #expect(served(by: "u2") > 0)

        // Added: 127.0.0.3 becomes a second server of the pool.
        try dns.setHosts([("127.0.0.2", "api.test"), ("127.0.0.3", "api.test")])
        #expect(try await waitUntil(.seconds(6)) { served(by: "u3") > 20 } != nil, "the added address got no requests")
        let servers = try await ConfigReloadTests.upstreams(gateway).keys.sorted()
        #expect(servers == ["api/api.test:\(port)@127.0.0.2", "api/api.test:\(port)@127.0.0.3"], "\(servers)")

        // Moved: both old addresses go, 127.0.0.4 comes; the old servers stay up meanwhile.
        try dns.setHosts([("127.0.0.4", "api.test")])
        #expect(try await waitUntil(.seconds(6)) { served(by: "u4") > 20 } != nil, "the new address got no requests")
        try await Task.sleep(for: .milliseconds(300))
        let oldCounts = (served(by: "u2"), served(by: "u3"))
        try await Task.sleep(for: .milliseconds(500))
        #expect((served(by: "u2"), served(by: "u3")) == oldCounts, "requests still went to the old addresses")
        #expect(upstreams[0].stats.openConnections == 0 && upstreams[1].stats.openConnections == 0,
                "the old addresses' connections were closed")

        // The DNS server is gone: the last addresses stay in use.
        dns.stop()
        let before = served(by: "u4")
        try await Task.sleep(for: .seconds(3))
        #expect(served(by: "u4") > before + 50)
        let metrics = String(decoding: try await gateway.admin("/metrics").body, as: UTF8.self)
        #expect(metrics.contains("gateway_dns_lookups_total{result=\"error\"}"), "\(metrics)")
        #expect(metrics.contains("gateway_dns_changes_total{host=\"api.test\"} 2"), "\(metrics)")

        let all = await load.stop()
        let failed = all.filter { $0.status != 200 }
        #expect(all.count > 500 && failed.isEmpty, "failed: \(failed.count) of \(all.count), e.g. \(failed.prefix(3))")
        await gateway.stop()
        for upstream in upstreams { await upstream.stop() }
        try? FileManager.default.removeItem(atPath: file)
    }

    /// A name that does not resolve at start-up is a configuration error naming it.
    @Test func anUnresolvableNameStopsTheStart() async throws {
        let dns = try Dnsmasq()
        defer { dns.stop() }
        try dns.setHosts([("127.0.0.9", "other.test")])
        #expect(try await Self.ready(dns, name: "other.test") != nil)
        let yaml = """
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            dns: { servers: ["\(dns.server)"], timeout: 200ms, tries: 1 }
            pools:
              api: { servers: ["http://nowhere.test:8000"] }
            """
        let error = await #expect(throws: ConfigError.self) { _ = try await TestGateway.start(yaml) }
        #expect(error?.description.contains("nowhere.test") == true, "\(String(describing: error))")
    }
}
