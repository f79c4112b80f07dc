import NIOCore
import Router
import NIOEmbedded
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Gateway

/// The client connection, its exchanges and the upstream handler driven through embedded channels.
@Suite struct HTTP1ConnectionTests {
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
        let runtime = try GatewayRuntime(config: config, metrics: GatewayMetrics(), logger: .init(label: "t"), accessLog: nil)
        context = LoopContext(eventLoop: loop, runtime: runtime, connector: connector, loopCount: 1)
    }

    func makeClient() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: HTTP1Connection(loop: context), loop: loop)
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

    /// The handler keeps its context, which keeps the handler: unless the handler lets go when it
    /// is removed, every closed connection leaks both, with all its buffers.
    @Test func aClosedConnectionIsFreed() throws {
        weak var freed: HTTP1Connection?
        do {
            let connection = HTTP1Connection(loop: context)
            freed = connection
            let client = EmbeddedChannel(handler: connection, loop: loop)
            try client.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 40000)).wait()
            try client.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"))
            let upstream = try #require(connector.channels.first)
            _ = try readAll(upstream)
            try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
            #expect(try readAll(client).hasSuffix("\r\n\r\nok"))
            loop.run()
            #expect(!client.isActive)
        }
        #expect(freed == nil)
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

    /// The retried attempt's response arrives in two reads: the first attempt's closed
    /// connection must not make the second look closed after its first read (CI saw a failover
    /// read cut off after its head this way).
    @Test func aRetryAfterAClosedConnectionGetsItsWholeResponse() throws {
        let config = try ConfigLoader.parse(yaml: """
            access_log: false
            pools:
              primary: { balancer: round_robin, servers: [http://127.0.0.1:9000, http://127.0.0.1:9001] }
            """)
        let runtime = try GatewayRuntime(config: config, metrics: GatewayMetrics(), logger: .init(label: "t"), accessLog: nil)
        let context = LoopContext(eventLoop: loop, runtime: runtime, connector: connector, loopCount: 1)
        let client = EmbeddedChannel(handler: HTTP1Connection(loop: context), loop: loop)
        try client.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 40000)).wait()

        try client.writeInbound(ByteBuffer(string: "GET /r HTTP/1.1\r\nHost: a\r\n\r\n"))
        try connector.channels[0].close().wait()
        loop.run()
        #expect(connector.channels.count == 2, "the GET was not retried on the other server")
        let second = connector.channels[1]
        #expect(try readAll(second).hasPrefix("GET /r HTTP/1.1"))
        try second.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst"))
        try second.writeInbound(ByteBuffer(string: "-half"))
        let response = try readAll(client)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.hasSuffix("\r\n\r\nfirst-half"))
        #expect(client.isActive, "the client was cut off after the first read of the retried response")
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

/// Persistence and framing towards HTTP/1.x clients, for every kind of answer.
@Suite struct HTTP1PersistenceTests {
    static let config = """
        access_log: false
        pools:
          primary: { servers: [http://127.0.0.1:9000] }
        """

    @Test func http10KeepAliveIsSaidAndKept() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let client = try gateway.client()
        let (_, response) = try gateway.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", on: client,
                                             upstream: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        #expect(response.header("connection") == "keep-alive")
        #expect(client.isActive)
        // The gateway's own answers say it too.
        gateway.refuseUpstreamConnections()
        let (_, local) = try gateway.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", on: client)
        #expect(local.status == 502 && local.header("connection") == "keep-alive")
        #expect(client.isActive)
    }

    @Test func http10ClientsGetChunkedBodiesCloseDelimited() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let client = try gateway.client()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        try gateway.connector.channels[0].writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
        let text = try EmbeddedGateway.readAll(client)
        #expect(text.contains("Connection: close\r\n") && !text.contains("Transfer-Encoding"))
        #expect(text.hasSuffix("\r\n\r\nabc"))
        #expect(!client.isActive)
    }

    @Test func aClientThatSaysCloseIsClosedAfterAnyAnswer() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let forwarded = try gateway.client()
        let (_, upstream) = try gateway.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", on: forwarded,
                                             upstream: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        #expect(upstream.header("connection") == "close" && !forwarded.isActive)
        gateway.refuseUpstreamConnections()
        let local = try gateway.client()
        let (_, failed) = try gateway.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", on: local)
        #expect(failed.status == 502 && failed.header("connection") == "close" && !local.isActive)
    }

    @Test func drainingClosesAfterTheResponseInFlight() throws {
        let gateway = try EmbeddedGateway(Self.config)
        let client = try gateway.client()
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        gateway.context.beginDrain()
        #expect(client.isActive)
        try gateway.connector.channels[0].writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"))
        let text = try EmbeddedGateway.readAll(client)
        #expect(text.contains("Connection: close\r\n") && text.hasSuffix("\r\n\r\n1"))
        #expect(!client.isActive)
    }

    @Test func aResponseBeforeTheBodyEndsClosesTheConnection() throws {
        // A streamed body (a buffered one would be read whole before any upstream is asked).
        let gateway = try EmbeddedGateway(Self.config + "\nlimits: { request_buffering: 0 }")
        let client = try gateway.client()
        try client.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345"))
        try gateway.connector.channels[0].writeInbound(ByteBuffer(string: "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"))
        let text = try EmbeddedGateway.readAll(client)
        #expect(text.hasPrefix("HTTP/1.1 413 ") && text.contains("Connection: close\r\n"))
        // The upstream connection, with half a body on it, is not reused.
        #expect(!gateway.connector.channels[0].isActive)
    }
}

/// Pooled upstream connections are never reused past their idle limit.
@Suite struct UpstreamKeepAliveTests {
    /// Real time passes (the pool compares deadlines with the clock), on the thread that made
    /// the embedded loop: an `await` could resume elsewhere, and an EmbeddedEventLoop used from
    /// another thread is NIO API misuse (logged now, a crash in later SwiftNIO versions).
    static func sleep(milliseconds: UInt32) {
        usleep(milliseconds * 1000)
    }

    @Test func aConnectionIdlePastIdleTimeoutIsNeverReusedEvenBeforeTheSweeperCloses() throws {
        // No sweeper runs in memory: only the lease's own check can retire the connection.
        let gateway = try EmbeddedGateway("""
            access_log: false
            upstream: { idle_timeout: 1s }
            pools:
              primary: { servers: [http://127.0.0.1:9000] }
            """)
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        _ = try gateway.send("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", upstream: answer)
        // Well inside the idle limit, with room for a loaded machine (a 300 ms limit flaked).
        Self.sleep(milliseconds: 100)
        _ = try gateway.send("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", upstream: answer)
        #expect(gateway.connector.channels.count == 1)
        Self.sleep(milliseconds: 1200)
        _ = try gateway.send("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", upstream: answer)
        #expect(gateway.connector.channels.count == 2)
        #expect(!gateway.connector.channels[0].isActive)
    }

    @Test func anAdvertisedKeepAliveTimeoutRetiresTheConnectionEarly() throws {
        let gateway = try EmbeddedGateway("""
            access_log: false
            upstream: { idle_timeout: 30s }
            pools:
              primary: { servers: [http://127.0.0.1:9000] }
            """)
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=1, max=100\r\n\r\nok"
        _ = try gateway.send("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", upstream: answer)
        #expect(gateway.connector.channels.count == 1)
        // Soon after: the same connection.
        Self.sleep(milliseconds: 100)
        _ = try gateway.send("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", upstream: answer)
        #expect(gateway.connector.channels.count == 1)
        // Past timeout − max(0.5 s, 20%) = 0.5 s: a new one, the old one closed.
        Self.sleep(milliseconds: 600)
        let (_, response) = try gateway.send("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", upstream: answer)
        #expect(response.status == 200)
        #expect(gateway.connector.channels.count == 2)
        #expect(!gateway.connector.channels[0].isActive)
    }
}

/// The pure decisions of one exchange.
@Suite struct ExchangeStateMachineTests {
    func machine(_ method: RequestMethod = .get, body: Bool = false, retries: Int = 1) -> ExchangeStateMachine {
        ExchangeStateMachine(method: method, requestHasBody: body, maxRetries: retries)
    }

    @Test func keepAliveExchangeReusesTheUpstream() {
        var exchange = machine(retries: 0)
        #expect(exchange.upstreamAttached() == false)
        #expect(exchange.responseHead(status: 200, contentLength: 3, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
        exchange.responseHeadForwarded()
        #expect(exchange.responseEnded() == true)
        var closing = machine(retries: 0)
        _ = closing.upstreamAttached()
        _ = closing.responseHead(status: 200, contentLength: 3, keepAlive: false)
        #expect(closing.responseEnded() == false)
    }

    @Test func interimResponsesAndProtocolSwitches() {
        var exchange = machine(.post, body: true)
        _ = exchange.upstreamAttached()
        #expect(exchange.responseHead(status: 100, contentLength: nil, keepAlive: true) == .interim)
        #expect(!exchange.responseHeadReceived)
        #expect(exchange.responseHead(status: 101, contentLength: nil, keepAlive: true) == .fail(.malformedResponse))
    }

    @Test func aProtocolSwitchThatWasAskedForMakesATunnel() {
        var asked = ExchangeStateMachine(method: .get, requestHasBody: false, maxRetries: 1, upgradeRequested: true)
        _ = asked.upstreamAttached()
        #expect(asked.responseHead(status: 101, contentLength: nil, keepAlive: true) == .switchProtocols)
        #expect(asked.tunnelling && asked.responseStarted)
        #expect(asked.waiting(upstreamWritable: true) == .tunnel)
        // The upstream connection speaks another protocol now: never back in the pool.
        #expect(asked.responseEnded() == false)
        // Refusing the switch is an ordinary response.
        var refused = ExchangeStateMachine(method: .get, requestHasBody: false, maxRetries: 1, upgradeRequested: true)
        _ = refused.upstreamAttached()
        #expect(refused.responseHead(status: 426, contentLength: 0, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
        #expect(!refused.tunnelling)
    }

    @Test func aResponseBeforeTheWholeBodyLeavesItUnreadAndTheUpstreamUnusable() {
        var exchange = machine(.post, body: true)
        #expect(exchange.upstreamAttached() == true)
        #expect(exchange.requestBodyUnread)
        _ = exchange.responseHead(status: 413, contentLength: 0, keepAlive: true)
        exchange.responseHeadForwarded()
        #expect(exchange.responseEnded() == false)
        #expect(exchange.requestBodyUnread)
    }

    @Test func retriesOnlyWhatIsSafe() {
        // Never reached an upstream: any method.
        #expect(machine(.post, body: true).retryIsSafe(after: .connectRefused))
        #expect(machine(.post, body: true).retryIsSafe(after: .connectTimeout))
        // Reset: only idempotent reads without a body.
        #expect(machine(.get).retryIsSafe(after: .reset))
        #expect(!machine(.post).retryIsSafe(after: .reset))
        #expect(!machine(.put, body: true).retryIsSafe(after: .reset))
        // Timeouts and bad responses: never.
        #expect(!machine(.get).retryIsSafe(after: .responseTimeout))
        #expect(!machine(.get).retryIsSafe(after: .malformedResponse))
        // Attempts are bounded.
        #expect(!machine(.get, retries: 0).retryIsSafe(after: .connectRefused))
        var once = machine(.get, retries: 1)
        _ = once.upstreamAttached()
        once.retrying()
        #expect(once.retries == 1)
        #expect(!once.retryIsSafe(after: .connectRefused))
        // Nothing once a response byte reached the client.
        var started = machine(.get, retries: 3)
        _ = started.upstreamAttached()
        _ = started.responseHead(status: 200, contentLength: 10, keepAlive: true)
        #expect(started.retryIsSafe(after: .reset))
        started.responseHeadForwarded()
        #expect(!started.retryIsSafe(after: .reset))
    }

    @Test func aRetryableReadHoldsItsHeadUntilItsBodyStarts() {
        var read = machine(.get, retries: 1)
        _ = read.upstreamAttached()
        #expect(read.responseHead(status: 200, contentLength: 10, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: true))
        // No body to wait for, a stream, a HEAD, a write, no retries left: the head goes at once.
        var empty = machine(.get, retries: 1)
        #expect(empty.responseHead(status: 204, contentLength: 0, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
        var stream = machine(.get, retries: 1)
        #expect(stream.responseHead(status: 200, contentLength: nil, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
        var head = machine(.head, retries: 1)
        #expect(head.responseHead(status: 200, contentLength: 10, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
        var write = machine(.post, body: true, retries: 1)
        #expect(write.responseHead(status: 200, contentLength: 10, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
        var noRetries = machine(.get, retries: 0)
        #expect(noRetries.responseHead(status: 200, contentLength: 10, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
    }

    @Test func serverErrorsMayBeReplaced() {
        var failing = machine(.get, retries: 0)
        #expect(failing.responseHead(status: 503, contentLength: 5, keepAlive: true) == .final(mayBeReplaced: true, holdUntilBody: false))
        var fine = machine(.get, retries: 0)
        #expect(fine.responseHead(status: 404, contentLength: 5, keepAlive: true) == .final(mayBeReplaced: false, holdUntilBody: false))
    }

    @Test func failuresBeforeAndAfterTheResponseStarted() {
        var before = machine()
        _ = before.upstreamAttached()
        #expect(before.failed(.responseTimeout) == .answer(status: 504))
        #expect(before.status == 504)
        var refused = machine(.post, body: true)
        #expect(refused.failed(.connectRefused) == .answer(status: 502))
        #expect(refused.requestBodyUnread)
        var after = machine()
        _ = after.upstreamAttached()
        _ = after.responseHead(status: 200, contentLength: 10, keepAlive: true)
        after.responseHeadForwarded()
        #expect(after.failed(.reset) == .abort)
        // A head received but held back (nothing reached the client): still answerable.
        var held = machine()
        _ = held.upstreamAttached()
        _ = held.responseHead(status: 200, contentLength: 10, keepAlive: true)
        #expect(!held.responseStarted)
        #expect(held.failed(.reset) == .answer(status: 502))
        #expect(UpstreamFailure.queueTimeout.status == 503)
        #expect(UpstreamFailure.noPrimary.status == 503 && UpstreamFailure.noPrimary.nothingToTry)
    }

    @Test func theWaitTellsWhichTimeoutRuns() {
        var upload = machine(.post, body: true)
        _ = upload.upstreamAttached()
        // Sending the body to an upstream that takes it: the client's body timeout.
        #expect(upload.waiting(upstreamWritable: true) == .requestBody)
        // The upstream holds the body back: its response timeout, the client is not at fault.
        #expect(upload.waiting(upstreamWritable: false) == .upstreamResponse)
        upload.requestBodyFinished()
        #expect(upload.waiting(upstreamWritable: true) == .upstreamResponse)
        // An answer before the body ended: the upstream's timeout while the response streams.
        var early = machine(.post, body: true)
        _ = early.upstreamAttached()
        _ = early.responseHead(status: 200, contentLength: 10, keepAlive: true)
        early.responseHeadForwarded()
        #expect(early.waiting(upstreamWritable: true) == .upstreamResponse)
    }
}

/// How responses are framed for HTTP/1.x clients.
@Suite struct ClientFramingTests {
    @Test func framingFollowsTheClientsVersion() {
        #expect(ClientFraming.choose(upstream: .length(3), clientMinorVersion: 1) == .asIs)
        #expect(ClientFraming.choose(upstream: .none, clientMinorVersion: 0) == .asIs)
        #expect(ClientFraming.choose(upstream: .chunked, clientMinorVersion: 1) == .chunked)
        #expect(ClientFraming.choose(upstream: .untilClose, clientMinorVersion: 1) == .chunked)
        #expect(ClientFraming.choose(upstream: .chunked, clientMinorVersion: 0) == .untilClose)
    }
}
