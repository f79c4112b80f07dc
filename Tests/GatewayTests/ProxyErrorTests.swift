import Foundation
import Testing
import TestSupport

@testable import Gateway

/// Every error the core answers, each with the right status, a JSON body and a clean connection.
@Suite(.timeLimit(.minutes(2)))
struct ProxyErrorTests {
    /// Asserts the short JSON error body and returns its request_id.
    @discardableResult
    func expectJSONError(_ response: TestResponse, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(response.header("content-type") == "application/json", sourceLocation: sourceLocation)
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
        #expect(object?["error"]?.isEmpty == false, "body: \(response.text)", sourceLocation: sourceLocation)
        #expect(object?["request_id"] == response.header("x-request-id"), sourceLocation: sourceLocation)
        return object?["request_id"]
    }

    @Test func headerSectionTooLargeIs431() async throws {
        try await withGateway("limits: { max_header_size: 1k }") { gateway, upstream in
            let client = try await gateway.client()
            try await client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
            let response = try await client.readResponse()
            expectJSONError(response, 431)
            #expect(response.header("connection") == "close")
            #expect(await client.waitForClose())
            #expect(upstream.stats.requests == 0)
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        try await withGateway("limits: { max_body_size: 1k }") { gateway, upstream in
            // Declared too large: refused before reading it.
            let client = try await gateway.client()
            try await client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "x", count: 5000))
            expectJSONError(try await client.readResponse(), 413)
            #expect(await client.waitForClose())
            #expect(upstream.stats.requests == 0)

            // Chunked, found too large while streaming.
            let chunked = try await gateway.client()
            try await chunked.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in 0..<3 { try await chunked.send("200\r\n" + String(repeating: "y", count: 512) + "\r\n") }
            expectJSONError(try await chunked.readResponse(), 413)
            #expect(await chunked.waitForClose())
        }
    }

    @Test func ambiguousFramingIs400AndClose() async throws {
        try await withGateway { gateway, upstream in
            for request in [
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
                "GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
            ] {
                let client = try await gateway.client()
                try await client.send(request)
                let response = try await client.readResponse()
                expectJSONError(response, 400)
                #expect(await client.waitForClose())
            }
            #expect(upstream.stats.requests == 0)
        }
    }

    @Test func slowHeadersAre408() async throws {
        try await withGateway("timeouts: { client_header: 500ms }") { gateway, _ in
            let client = try await gateway.client(sending: "GET / HTTP/1.1\r\nHost: t\r\n")
            let started = ContinuousClock.now
            // Dribble a header line every 100 ms for up to 2 s (slowloris): it must not extend
            // the deadline, which runs from the first byte of the head.
            while ContinuousClock.now - started < .seconds(2), !client.isClosed {
                try await Task.sleep(for: .milliseconds(100))
                do { try await client.send("X-A: 1\r\n") } catch { break }
            }
            let response = try await client.readResponse(timeout: .seconds(3))
            expectJSONError(response, 408)
            let answeredAfter = try #require(client.timeToFirstByte)
            #expect(answeredAfter < .milliseconds(1500), "the 408 came only after \(answeredAfter), when the dribbling stopped")
            #expect(await client.waitForClose())
            await client.close()

            // An idle connection with nothing sent is just closed.
            let idle = try await gateway.client()
            #expect(await idle.waitForClose(timeout: .seconds(3)))
            #expect(idle.receivedCount == 0)
        }
    }

    @Test func upstreamRefusingIs502() async throws {
        // A port nothing listens on (held for the whole test).
        let refusing = try RefusingPort()
        let closedPort = refusing.port
        let gateway = try await TestGateway.start("""
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            pools:
              primary: { servers: ["http://127.0.0.1:\(closedPort)"] }
            """)
        let response = try await gateway.request("GET", "/")
        expectJSONError(response, 502)
        #expect(response.text.contains("refused"))
        await gateway.stop()
        withExtendedLifetime(refusing) {}
    }

    @Test func upstreamResetIs502AndMidResponseResetCutsTheClient() async throws {
        try await withGateway { gateway, _ in
            let client = try await gateway.client()
            try await client.send("GET /reset HTTP/1.1\r\nHost: t\r\n\r\n")
            expectJSONError(try await client.readResponse(), 502)
            // No request body was pending: the client connection stays usable.
            try await client.send("GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse().status == 200)
            await client.close()

            // Reset after the head went out: the client sees the connection end early.
            let cut = try await gateway.client()
            try await cut.send("GET /reset-mid HTTP/1.1\r\nHost: t\r\n\r\n")
            let bytes = await cut.readUntilClosed()
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(bytes.count < 102_400)
        }
    }

    @Test func slowUpstreamIs504() async throws {
        try await withGateway("upstream: { response_timeout: 300ms }") { gateway, _ in
            let client = try await gateway.client(sending: "GET /slow-head/3000 HTTP/1.1\r\nHost: t\r\n\r\n")
            expectJSONError(try await client.readResponse(), 504)
            // The upstream answers after 3 s; the 504 must come from the 300 ms timeout.
            let answeredAfter = try #require(client.timeToFirstByte)
            #expect(answeredAfter < .seconds(2), "the 504 came after \(answeredAfter)")
        }
    }

    @Test func metricsCountErrorsByKind() async throws {
        try await withGateway("upstream: { response_timeout: 200ms }") { gateway, _ in
            _ = try await gateway.request("GET", "/slow-head/1000")
            _ = try await gateway.request("GET", "/reset")
            let metrics = try await gateway.admin("/metrics").text
            #expect(metrics.contains("gateway_errors_total{kind=\"upstream_timeout\"} 1"))
            #expect(metrics.contains("gateway_errors_total{kind=\"upstream_reset\"} 1"))
            #expect(metrics.contains("gateway_requests_total{pool=\"primary\",code=\"5xx\"} 2"))
        }
    }
}
