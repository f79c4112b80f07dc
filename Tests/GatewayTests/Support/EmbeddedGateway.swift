import HTTPWire
import Logging
import NIOCore
import NIOEmbedded
import TestSupport

@testable import Gateway

/// Makes an embedded channel for every upstream connection, so a whole exchange (client
/// connection, filters, pool, upstream handler) runs in memory on one embedded loop.
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

/// The gateway's data path in memory, from a YAML config: one loop context on an embedded
/// event loop, clients and upstream connections as embedded channels. No sockets, no servers;
/// filters and the pipeline run exactly as in production.
final class EmbeddedGateway {
    let loop = EmbeddedEventLoop()
    let connector: EmbeddedUpstreamConnector
    let context: LoopContext
    let accessLog = LogCapture()

    init(_ yaml: String) throws {
        connector = EmbeddedUpstreamConnector(loop: loop)
        let config = try ConfigLoader.parse(yaml: yaml, file: "test.yaml")
        let runtime = try GatewayRuntime(config: config, metrics: GatewayMetrics(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
                                         accessLog: accessLog)
        context = LoopContext(eventLoop: loop, runtime: runtime, connector: connector, loopCount: 1)
        let loop = self.loop
        accessLog.flushGateway = { loop.run() }
    }

    func client(from address: String = "192.0.2.10") throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: HTTP1Connection(loop: context), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: address, port: 40000)).wait()
        return channel
    }

    /// Upstream servers stop accepting: pooled connections close, new connects are refused.
    func refuseUpstreamConnections() {
        connector.refuse = true
        for channel in connector.channels where channel.isActive { _ = try? channel.close().wait() }
        loop.run()
    }

    static func readAll(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// The requests the upstream connections received since the last call, in order.
    func upstreamRequests() throws -> [String] {
        try connector.channels.map(Self.readAll).filter { !$0.isEmpty }
    }

    /// One request through `client`: the upstream (if the gateway asks it) answers `upstream`;
    /// returns what the upstream received and the parsed response.
    func send(_ request: String, on client: EmbeddedChannel? = nil, upstream answer: String? = nil) throws -> (upstream: String?, response: TestResponse) {
        let client = try client ?? self.client()
        try client.writeInbound(ByteBuffer(string: request))
        // What a real loop would run on its next ticks (stores completing, hand-overs).
        loop.run()
        var received: String?
        // The connection that got the request: a new one, or a pooled one with unread output.
        for channel in connector.channels.reversed() {
            let text = try Self.readAll(channel)
            if !text.isEmpty {
                received = text
                if let answer { try channel.writeInbound(ByteBuffer(string: answer)) }
                loop.run()
                break
            }
        }
        let text = try Self.readAll(client)
        guard let (response, _) = ResponseParser.parse(Array(text.utf8), head: request.hasPrefix("HEAD "), closed: !client.isActive) else {
            throw TestClientError("no complete response to \(request.debugDescription) in \(text.debugDescription)")
        }
        return (received, response)
    }
}
