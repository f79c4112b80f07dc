import Foundation
import Testing
import TestSupport

@testable import Gateway

/// A gateway in front of a real stack: a pool per region, each with its database.
func withStackGateway(
    regions: [String] = ["us-east", "eu-west", "ap-southeast"], extraYAML: String = "", listen: String = "127.0.0.1:0",
    _ body: (Stack, TestGateway) async throws -> Void
) async throws {
    try await withStack(regions: regions, redis: false) { stack in
        let gateway = try await TestGateway.start(stackGatewayYAML(stack, regions: regions, extraYAML: extraYAML, listen: listen))
        do {
            // Tests start from a gateway that has probed every database once and found it.
            let ready = try await waitUntil(.seconds(15)) {
                let list = try await gateway.upstreamsReport()["databases"] as? [[String: Any]] ?? []
                return list.count == regions.count && list.allSatisfy { $0["reachable"] as? Bool == true && ($0["role"] as? String ?? "unknown") != "unknown" }
            }
            if ready == nil { Issue.record("the gateway never reached every database: \(try await gateway.upstreamsReport())") }
            try await body(stack, gateway)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }
}

/// A gateway config for a stack: a pool per region, each with its database.
func stackGatewayYAML(_ stack: Stack, regions: [String], extraYAML: String, listen: String = "127.0.0.1:0") -> String {
    var pools = ""
    var databases = ""
    for (index, region) in regions.enumerated() {
        let name = index == 0 ? "primary" : region
        pools += "  \(name): { role: \(index == 0 ? "primary" : "replica"), region: \(region), database: \(region), servers: [\"\(stack.api(region).url)\"] }\n"
        databases += "  \(region): \"\(stack.node(region).url)?application_name=gateway-probe\"\n"
    }
    let fallback = regions.dropFirst().map { region in
        "\(region): [\(regions.dropFirst().filter { $0 != region }.joined(separator: ", "))]"
    }.joined(separator: ", ")
    return """
        listen: \(listen)
        admin: 127.0.0.1:0
        debug_headers: true
        trusted_proxies: [127.0.0.1/32]
        regions:
          default: \(regions[0])
          header: { name: X-Region }
          fallback: { \(fallback) }
        databases:
        \(databases)
        pools:
        \(pools)
        \(extraYAML)
        """
}

extension TestGateway {
    func send(_ method: String, _ path: String, region: String? = nil, body: String? = nil) async throws -> TestResponse {
        try await RawClient.request(method, "http://127.0.0.1:\(proxyPort)\(path)",
                                    headers: region.map { ["X-Region: \($0)"] } ?? [], body: body, timeout: .seconds(15))
    }

    /// The admin API's view of upstreams and databases.
    func upstreamsReport() async throws -> [String: Any] {
        let response = try await admin("/admin/upstreams")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    func serverHealth(_ pool: String) async throws -> String? {
        let list = try await upstreamsReport()["upstreams"] as? [[String: Any]] ?? []
        return list.first { $0["pool"] as? String == pool }?["health"] as? String
    }

    func database(_ name: String) async throws -> [String: Any]? {
        let list = try await upstreamsReport()["databases"] as? [[String: Any]] ?? []
        return list.first { $0["name"] as? String == name }
    }
}
