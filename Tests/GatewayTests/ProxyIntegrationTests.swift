import Foundation
import Testing
import TestSupport

@testable import Gateway

/// The proxy against real upstream servers on loopback.
@Suite(.timeLimit(.minutes(2)))
struct ProxyIntegrationTests {
    @Test func keepAliveReusesFewUpstreamConnections() async throws {
        // A long idle limit: on a starved machine (this test once took 9.9 s instead of 0.2 s in
        // a full run) a client's connection could sit idle past the default 1.5 s between two of
        // its requests, and the pool rightly opens a new one then — not what this test is about.
        try await withGateway("upstream: { idle_timeout: 60s }") { gateway, upstream in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let client = try await gateway.client()
                        for i in 0..<50 {
                            try await client.send("GET /item/\(i) HTTP/1.1\r\nHost: t\r\n\r\n")
                            let response = try await client.readResponse()
                            #expect(response.status == 200)
                        }
                        await client.close()
                    }
                }
                try await group.waitForAll()
            }
            let stats = upstream.stats
            #expect(stats.requests == 200)
            // Four clients at a time need at most four upstream connections, reused throughout.
            #expect(stats.connections <= 4)
            #expect(stats.connections >= 1)
        }
    }

    @Test func largeBodiesStreamBothWays() async throws {
        try await withGateway("limits: { max_body_size: 64MiB }") { gateway, _ in
            // Upload 24 MiB with Content-Length.
            let size = 24 << 20
            var payload: [UInt8] = []
            payload.reserveCapacity(size)
            while payload.count < size {
                payload += TestUpstream.patternTable[0..<min(TestUpstream.patternPeriod, size - payload.count)]
            }
            let client = try await gateway.client()
            try await client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
            try await client.send(payload)
            let upload = try await client.readResponse(timeout: .seconds(60))
            #expect(upload.status == 200)
            #expect(upload.text.contains("\"bytes\":\(size)"))
            #expect(upload.text.contains(String(TestUpstream.fnv1a(payload), radix: 16)))

            // Download 32 MiB with Content-Length and 8 MiB chunked, on the same connection.
            for (path, count) in [("/bytes/\(32 << 20)", 32 << 20), ("/chunked/\(8 << 20)", 8 << 20)] {
                try await client.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
                let response = try await client.readResponse(timeout: .seconds(60))
                #expect(response.status == 200)
                #expect(response.body.count == count)
                #expect(TestUpstream.isPattern(response.body))
            }
            await client.close()
        }
    }

    @Test func chunkedUploadIsReframedAndCounted() async throws {
        try await withGateway { gateway, upstream in
            let client = try await gateway.client()
            try await client.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            try await client.send("5;ext=1\r\nhello\r\n")
            try await Task.sleep(for: .milliseconds(50))
            try await client.send("6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 200)
            #expect(response.text.contains("\"bytes\":11"))
            #expect(response.text.contains(String(TestUpstream.fnv1a(Array("hello world".utf8)), radix: 16)))
            #expect(upstream.stats.lastHeaders["transfer-encoding"] == ["chunked"])
            await client.close()
        }
    }

    @Test func slowReaderIsNotBufferedInMemory() async throws {
        try await withGateway { gateway, upstream in
            let total = 96 << 20
            let client = try await RawClient.connect(port: gateway.proxyPort, autoRead: false, receiveBuffer: 64 * 1024)
            try await client.send("GET /bytes/\(total) HTTP/1.1\r\nHost: t\r\n\r\n")
            client.readMore()
            try await Task.sleep(for: .milliseconds(1500))
            // The client reads nothing. A gateway that buffered would let the upstream write all
            // 96 MiB; with backpressure only the socket buffers on the way fill (a few MiB each).
            let writtenWhileStalled = upstream.stats.bodyBytesWritten
            #expect(writtenWhileStalled < 24 << 20, "the upstream wrote \(writtenWhileStalled >> 20) MiB to a client that reads nothing")
            try await Task.sleep(for: .milliseconds(500))
            #expect(upstream.stats.bodyBytesWritten - writtenWhileStalled < 1 << 20, "the upstream kept writing")
            var received = client.receivedCount
            #expect(received < 8 << 20)
            // Now read it all: every byte arrives.
            let deadline = ContinuousClock.now + .seconds(90)
            while received < total + 64, ContinuousClock.now < deadline {
                client.readMore()
                try await Task.sleep(for: .microseconds(50))
                received = client.receivedCount
            }
            #expect(received > total)
            #expect(upstream.stats.bodyBytesWritten == total)
            await client.close()
        }
    }

    /// A response on a connection that closes after it (`Connection: close`) reaches a slow
    /// reader whole: the close must not come while the end of the body is still queued.
    @Test func aSlowReaderGetsAllOfTheLastResponseBeforeTheClose() async throws {
        try await withGateway { gateway, upstream in
            let total = 8 << 20
            let client = try await RawClient.connect(port: gateway.proxyPort, autoRead: false, receiveBuffer: 64 * 1024)
            try await client.send("GET /bytes/\(total) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let deadline = ContinuousClock.now + .seconds(60)
            while !client.isClosed, ContinuousClock.now < deadline {
                client.readMore()
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(client.isClosed)
            let received = await client.readUntilClosed()
            let end = Array("\r\n\r\n".utf8)
            let headBytes = try #require((0..<min(received.count, 4096)).first { received[$0...].starts(with: end) }) + end.count
            #expect(received.count - headBytes == total, "got \(received.count - headBytes) of \(total) body bytes before the close")
            #expect(upstream.stats.bodyBytesWritten == total)
            await client.close()
        }
    }

    @Test func headersAreRewritten() async throws {
        try await withGateway { gateway, upstream in
            let response = try await gateway.request("GET", "/echo?q=1", headers: [
                "Connection: keep-alive, X-Hop",
                "X-Hop: secret",
                "Keep-Alive: timeout=5",
                "TE: trailers",
                "Upgrade: websocket",
                "Proxy-Connection: keep-alive",
                "X-Forwarded-For: 203.0.113.7",
                "X-Forwarded-Proto: https",
                "X-Forwarded-Host: evil.example",
                "X-Custom: kept",
            ])
            #expect(response.status == 200)
            let seen = upstream.stats.lastHeaders
            for dropped in ["connection", "x-hop", "keep-alive", "te", "upgrade", "proxy-connection"] {
                #expect(seen[dropped] == nil, "\(dropped) reached the upstream")
            }
            #expect(seen["x-custom"] == ["kept"])
            #expect(seen["host"] == ["gateway.test"])
            #expect(seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"])
            // The peer is not a trusted proxy: its X-Forwarded-Proto/Host are replaced.
            #expect(seen["x-forwarded-proto"] == ["http"])
            #expect(seen["x-forwarded-host"] == ["gateway.test"])
            let id = try #require(seen["x-request-id"]?.first)
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
            #expect(response.header("x-request-id") == id)

            _ = try await gateway.request("GET", "/echo", headers: ["X-Request-Id: client-chosen-42"])
            #expect(upstream.stats.lastHeaders["x-request-id"] == ["client-chosen-42"])
        }
    }

    @Test func trustedProxyKeepsForwardedHeaders() async throws {
        try await withGateway("trusted_proxies: [127.0.0.1/32]") { gateway, upstream in
            _ = try await gateway.request("GET", "/echo", headers: ["X-Forwarded-Proto: https", "X-Forwarded-Host: api.example"])
            #expect(upstream.stats.lastHeaders["x-forwarded-proto"] == ["https"])
            #expect(upstream.stats.lastHeaders["x-forwarded-host"] == ["api.example"])
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withGateway { gateway, _ in
            let client = try await gateway.client()
            try await client.send(
                "GET /delay/150 HTTP/1.1\r\nHost: t\r\n\r\n"
                + "GET /name HTTP/1.1\r\nHost: t\r\n\r\n"
                + "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /delay/10 HTTP/1.1\r\nHost: t\r\n\r\n")
            let first = try await client.readResponse()
            let second = try await client.readResponse()
            let third = try await client.readResponse()
            let fourth = try await client.readResponse()
            #expect(first.text == "{\"delayed_ms\":150}")
            #expect(second.text == "upstream")
            #expect(third.text.contains("\"bytes\":3"))
            #expect(fourth.text == "{\"delayed_ms\":10}")
            await client.close()
        }
    }

    @Test func framingIsAdaptedToEachClient() async throws {
        try await withGateway { gateway, _ in
            // A close-delimited upstream body reaches an HTTP/1.1 client chunked, and the client
            // connection stays open.
            let client = try await gateway.client()
            try await client.send("GET /until-close/5000 HTTP/1.1\r\nHost: t\r\n\r\n")
            let rechunked = try await client.readResponse()
            #expect(rechunked.header("transfer-encoding") == "chunked")
            #expect(rechunked.body.count == 5000)
            try await client.send("GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse().text == "upstream")
            await client.close()

            // A chunked body reaches an HTTP/1.0 client close-delimited.
            let old = try await gateway.client()
            try await old.send("GET /chunked/3000 HTTP/1.0\r\n\r\n")
            let bytes = await old.readUntilClosed()
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(!text.lowercased().contains("transfer-encoding"))
            #expect(text.contains("Connection: close"))
            let body = bytes.split(separator: 10, omittingEmptySubsequences: false)
            #expect(body.count > 1)

            // HEAD: the length of the body, without the body.
            let head = try await gateway.request("HEAD", "/bytes/1234")
            #expect(head.status == 200)
            #expect(head.header("content-length") == "1234")
        }
    }

    @Test func expectContinuePassesThrough() async throws {
        try await withGateway { gateway, _ in
            let client = try await gateway.client()
            try await client.send("POST /continue HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            let interim = try await client.readResponse()
            #expect(interim.status == 100)
            try await client.send("data")
            let final = try await client.readResponse()
            #expect(final.status == 200)
            await client.close()
        }
    }

    @Test func debugHeadersName() async throws {
        try await withGateway("debug_headers: true") { gateway, upstream in
            let response = try await gateway.request("GET", "/name")
            #expect(response.header("x-gateway-pool") == "primary")
            #expect(response.header("x-gateway-server") == "127.0.0.1:\(upstream.port)")
        }
        try await withGateway { gateway, _ in
            let response = try await gateway.request("GET", "/name")
            #expect(response.header("x-gateway-pool") == nil)
        }
    }

    @Test func accessLogHasOneStructuredLinePerRequest() async throws {
        try await withGateway { gateway, upstream in
            _ = try await gateway.request("GET", "/status/404?x=1")
            let entry = try #require(gateway.accessLog.entries.last)
            #expect(entry.message == "request")
            #expect(entry.metadata["method"] == "GET")
            #expect(entry.metadata["path"] == "/status/404?x=1")
            #expect(entry.metadata["status"].map { "\($0)" } == "404")
            #expect(entry.metadata["pool"] == "primary")
            #expect(entry.metadata["server"] == "127.0.0.1:\(upstream.port)")
            #expect(entry.metadata["client"] == "127.0.0.1")
            #expect(entry.metadata["request_id"].map { "\($0)".count == 32 } == true)
            #expect(entry.metadata["duration_ms"] != nil)
            #expect(entry.metadata["bytes_out"].map { "\($0)" } == "0")
        }
    }
}
