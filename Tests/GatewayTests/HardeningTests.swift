import Foundation
import Testing
import TestSupport

@testable import Gateway

/// What a hostile or careless client must not be able to do to other users (issue 13), against
/// real upstreams on loopback.
@Suite struct HardeningTests {
    /// The gateway's view of its upstream connections.
    static func upstreamConnections(_ gateway: TestGateway) async throws -> (open: Int, idle: Int) {
        let response = try await gateway.admin("/admin/upstreams")
        let list = try #require((try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["upstreams"] as? [[String: Any]])
        return (list.first?["connections_open"] as? Int ?? -1, list.first?["connections_idle"] as? Int ?? -1)
    }

    /// Waits until `condition` holds (closes are asynchronous), for up to `timeout`.
    static func eventually(timeout: Duration = .seconds(3), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }

    @Test func requestsThatEndBeforeTheirBodyNeverLeaveAnUpstreamConnectionOpen() async throws {
        // Few connection slots, a short queue: a leak shows as 503s within a few dozen requests.
        try await withGateway("upstream: { max_connections: 8, queue_timeout: 300ms }") { gateway, upstream in
            let malformed = ["5g", "fffffffffffffffffffff", "5\r\nhelloXX", "5\nhello"]
            for round in 0..<10 {
                for chunk in malformed {
                    // Each on a new client connection, so each needs an upstream connection of its
                    // own at once; the head goes up before the body turns out malformed.
                    let client = try await gateway.client()
                    try await client.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\(chunk)\r\nhello\r\n0\r\n\r\n")
                    let response = try await client.readResponse()
                    #expect(response.status == 400, "round \(round), chunk \(chunk.debugDescription)")
                    await client.close()
                }
                // A client that leaves in the middle of its body, before or after its connect.
                let leaving = try await gateway.client()
                try await leaving.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\npart")
                await leaving.close()
            }
            // Writes still get through, and the connections went away.
            let write = try await gateway.request("POST", "/upload", body: "{\"ok\":true}")
            #expect(write.status == 200)
            let settled = try await Self.eventually { try await Self.upstreamConnections(gateway).open <= 1 }
            let open = try await Self.upstreamConnections(gateway).open
            #expect(settled, "the gateway still has \(open) upstream connections open")
            let closed = await Self.eventually { upstream.stats.openConnections <= 1 }
            #expect(closed, "the upstream still has \(upstream.stats.openConnections) connections open")
        }
    }
}
