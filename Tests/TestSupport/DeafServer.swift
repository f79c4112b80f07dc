import NIOCore
import NIOPosix

/// A TCP server that accepts connections and never reads from them, with a small receive
/// buffer: an upstream that takes nothing of a request body, so what the gateway sends it backs
/// up after a few KiB of socket buffers.
public final class DeafServer: @unchecked Sendable {
    private var channel: Channel?
    public private(set) var port = 0

    public init() {}

    public func start() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.socketOption(.so_rcvbuf), value: 4096)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.channel = channel
        port = channel.localAddress?.port ?? 0
    }

    public func stop() async {
        try? await channel?.close()
    }
}
