import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// Makes an embedded channel for every upstream connection, so a whole exchange (client handler,
/// pool, upstream handler) runs in memory on one embedded loop.
final class EmbeddedUpstreamConnector: UpstreamConnector, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    var channels: [EmbeddedChannel] = []
    var refuse = false

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func connect(to server: UpstreamServer, on eventLoop: EventLoop, handler: UpstreamConnection) -> EventLoopFuture<Channel> {
        if refuse {
            return loop.makeFailedFuture(IOError(errnoCode: 111, reason: "connect"))
        }
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        channels.append(channel)
        return channel.connect(to: server.address).map { channel }
    }
}

/// The client handler and the upstream handler driven through embedded channels.
@Suite struct DownstreamHandlerTests {
    let loop = EmbeddedEventLoop()
    let connector: EmbeddedUpstreamConnector
    let context: LoopContext

    init() throws {
        connector = EmbeddedUpstreamConnector(loop: loop)
        let config = try ConfigLoader.parse(yaml: """
            debug_headers: true
            access_log: false
            timeouts: { client_header: 5s, keepalive: 30s }
            pools:
              primary: { servers: [http://127.0.0.1:9000] }
            """)
        let runtime = try GatewayRuntime(config: config, metrics: GatewayMetrics(), logger: .init(label: "t"), accessLogger: nil)
        context = LoopContext(eventLoop: loop, runtime: runtime, connector: connector, loopCount: 1)
    }

    func makeClient() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: DownstreamHandler(loop: context), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 40000)).wait()
        return channel
    }

    func readAll(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func forwardsARequestAndItsResponse() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET /a?b=1 HTTP/1.1\r\nHost: api\r\nConnection: keep-alive\r\n\r\n"))
        #expect(connector.channels.count == 1)
        let upstream = connector.channels[0]
        let request = try readAll(upstream)
        #expect(request.hasPrefix("GET /a?b=1 HTTP/1.1\r\nHost: api\r\n"))
        #expect(request.contains("X-Forwarded-For: 192.0.2.10\r\n"))
        #expect(!request.contains("Connection:"))

        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello"))
        let response = try readAll(client)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"))
        #expect(!response.contains("Keep-Alive"))
        #expect(response.contains("X-Gateway-Pool: primary\r\n"))
        #expect(response.hasSuffix("\r\n\r\nhello"))

        // The upstream connection went back to the pool and serves the next request.
        try client.writeInbound(ByteBuffer(string: "GET /next HTTP/1.1\r\nHost: api\r\n\r\n"))
        #expect(connector.channels.count == 1)
        #expect(try readAll(upstream).hasPrefix("GET /next HTTP/1.1"))
    }

    @Test func responseArrivingInPiecesIsStreamed() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: api\r\n\r\n"))
        let upstream = connector.channels[0]
        _ = try readAll(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"))
        let first = try readAll(client)
        #expect(first.contains("Transfer-Encoding: chunked\r\n"))
        #expect(first.hasSuffix("3\r\nabc\r\n"))
        try upstream.writeInbound(ByteBuffer(string: "2\r\nde\r\n0\r\n\r\n"))
        #expect(try readAll(client) == "2\r\nde\r\n0\r\n\r\n")
    }

    @Test func pipelinedRequestsWaitForTheirTurn() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"))
        let upstream = connector.channels[0]
        let sent = try readAll(upstream)
        // Only the first request went out; the second waits for the first response.
        #expect(sent.hasPrefix("GET /1 "))
        #expect(!sent.contains("GET /2 "))
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"))
        #expect(try readAll(upstream).hasPrefix("GET /2 "))
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"))
        let responses = try readAll(client)
        #expect(responses.hasSuffix("\r\n\r\n2"))
        #expect(responses.components(separatedBy: "HTTP/1.1 200").count == 3)
    }

    @Test func refusedConnectIs502() throws {
        connector.refuse = true
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        let response = try readAll(client)
        #expect(response.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(response.contains("\"error\":\"upstream refused the connection\""))
        #expect(client.isActive)
    }

    @Test func upstreamClosingBeforeAResponseIs502() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        let upstream = connector.channels[0]
        try upstream.close().wait()
        #expect(try readAll(client).hasPrefix("HTTP/1.1 502 "))
    }

    @Test func headerTimeoutAnswers408() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHo"))
        context.sweeper.sweep(now: .now() + .seconds(6))
        let response = try readAll(client)
        #expect(response.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(response.contains("Connection: close\r\n"))
    }

    @Test func idleKeepAliveTimeoutClosesSilently() throws {
        let client = try makeClient()
        context.sweeper.sweep(now: .now() + .seconds(31))
        #expect(try readAll(client).isEmpty)
        #expect(!client.isActive)
    }

    @Test func badRequestIs400AndNoUpstreamIsUsed() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
        let response = try readAll(client)
        #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(connector.channels.isEmpty)
    }

    @Test func clientLeavingMidResponseReleasesTheUpstreamUnusable() throws {
        let client = try makeClient()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        let upstream = connector.channels[0]
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"))
        try client.close().wait()
        // Half a response is in flight on that connection: it must not be reused.
        #expect(!upstream.isActive)
    }
}

/// The pure decisions of one exchange.
@Suite struct ExchangeStateMachineTests {
    @Test func keepAliveExchange() {
        var machine = ExchangeStateMachine(method: .get, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: false)
        #expect(machine.upstreamAttached() == false)
        #expect(machine.responseHead(status: 200, framing: .length(3), keepAlive: true) == .forward(.asIs, .implicit))
        #expect(machine.responseEnded() == .init(reuseUpstream: true, closeClient: false, writeLastChunk: false))
    }

    @Test func framingAndPersistenceFollowTheClient() {
        var http10 = ExchangeStateMachine(method: .get, clientMinorVersion: 0, clientKeepAlive: true, requestHasBody: false)
        _ = http10.upstreamAttached()
        #expect(http10.responseHead(status: 200, framing: .length(3), keepAlive: true) == .forward(.asIs, .keepAlive))
        var http10Chunked = ExchangeStateMachine(method: .get, clientMinorVersion: 0, clientKeepAlive: true, requestHasBody: false)
        _ = http10Chunked.upstreamAttached()
        #expect(http10Chunked.responseHead(status: 200, framing: .chunked, keepAlive: true) == .forward(.untilClose, .close))
        var untilClose = ExchangeStateMachine(method: .get, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: false)
        _ = untilClose.upstreamAttached()
        #expect(untilClose.responseHead(status: 200, framing: .untilClose, keepAlive: false) == .forward(.chunked, .implicit))
        #expect(untilClose.responseEnded() == .init(reuseUpstream: false, closeClient: false, writeLastChunk: true))
    }

    @Test func interimResponses() {
        var machine = ExchangeStateMachine(method: .post, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: true)
        _ = machine.upstreamAttached()
        #expect(machine.responseHead(status: 100, framing: .none, keepAlive: true) == .forwardInterim)
        #expect(machine.responseHead(status: 101, framing: .none, keepAlive: true) == .fail(.malformedResponse))
        var old = ExchangeStateMachine(method: .post, clientMinorVersion: 0, clientKeepAlive: true, requestHasBody: true)
        _ = old.upstreamAttached()
        #expect(old.responseHead(status: 100, framing: .none, keepAlive: true) == .dropInterim)
    }

    @Test func earlyResponseClosesBothConnections() {
        var machine = ExchangeStateMachine(method: .post, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: true)
        #expect(machine.upstreamAttached() == true)
        // The upstream answers before the body was read: the client connection cannot continue.
        #expect(machine.responseHead(status: 413, framing: .length(0), keepAlive: true) == .forward(.asIs, .close))
        #expect(machine.responseEnded() == .init(reuseUpstream: false, closeClient: true, writeLastChunk: false))
    }

    @Test func failuresBeforeAndAfterTheResponseStarted() {
        var before = ExchangeStateMachine(method: .get, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: false)
        _ = before.upstreamAttached()
        #expect(before.upstreamFailed(.responseTimeout) == .respond(status: 504, closeClient: false))
        var withBody = ExchangeStateMachine(method: .post, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: true)
        #expect(withBody.upstreamFailed(.connectRefused) == .respond(status: 502, closeClient: true))
        var after = ExchangeStateMachine(method: .get, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: false)
        _ = after.upstreamAttached()
        _ = after.responseHead(status: 200, framing: .length(10), keepAlive: true)
        after.responseHeadForwarded()
        #expect(after.upstreamFailed(.reset) == .abortClient)
        // A head received but held back (nothing reached the client): still answerable.
        var held = ExchangeStateMachine(method: .get, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: false)
        _ = held.upstreamAttached()
        _ = held.responseHead(status: 200, framing: .length(10), keepAlive: true)
        #expect(!held.responseStarted)
        #expect(held.upstreamFailed(.reset) == .respond(status: 502, closeClient: false))
        #expect(UpstreamFailure.queueTimeout.status == 503)
    }

    @Test func drainingClosesAfterTheResponse() {
        var machine = ExchangeStateMachine(method: .get, clientMinorVersion: 1, clientKeepAlive: true, requestHasBody: false)
        _ = machine.upstreamAttached()
        machine.closeClientAfterResponse()
        #expect(machine.responseHead(status: 200, framing: .length(1), keepAlive: true) == .forward(.asIs, .close))
    }
}
