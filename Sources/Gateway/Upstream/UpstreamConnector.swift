import NIOCore
import NIOPosix

/// Opens connections to upstream servers. The real one uses TCP; handler tests substitute
/// embedded channels so the whole proxy can run in memory.
protocol UpstreamConnector {
    /// Connects on `eventLoop` (the loop of the client connection that needs it) and installs
    /// `handler` as the channel's only handler.
    func connect(to server: UpstreamServer, on eventLoop: EventLoop, handler: UpstreamConnection) -> EventLoopFuture<Channel>
}

struct TCPUpstreamConnector: UpstreamConnector {
    func connect(to server: UpstreamServer, on eventLoop: EventLoop, handler: UpstreamConnection) -> EventLoopFuture<Channel> {
        let boundHandler = NIOLoopBound(handler, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(server.settings.connectTimeout.timeAmount)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.maxMessagesPerRead, value: 4)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try server.addTLSHandler(to: channel)
                    try channel.pipeline.syncOperations.addHandler(boundHandler.value)
                }
            }
            .connect(to: server.address)
    }
}

extension UpstreamServer {
    /// For an `https://` server, TLS goes first in a new connection's pipeline: the HTTP
    /// handlers above it read and write plaintext, and writes made before the handshake
    /// completes wait in it.
    func addTLSHandler(to channel: Channel) throws {
        try tls?.addHandler(to: channel, serverName: tlsServerName)
    }
}
