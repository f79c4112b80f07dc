import NIOCore
import NIOPosix

/// One request on a new connection with one deadline, connect included: what health probes
/// and JWKS fetches both do. `setUp` installs the channel's handlers (TLS, then the one that
/// completes `promise` from the answer); the connection closes once `promise` completes.
enum OneShotRequest {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func send<Value>(
        _ request: String, promise: EventLoopPromise<Value>, timeout: TimeAmount, on eventLoop: EventLoop,
        connect: (ClientBootstrap) -> EventLoopFuture<Channel>, target: String,
        setUp: @escaping @Sendable (Channel) throws -> Void
    ) -> EventLoopFuture<Value> {
        let timer = eventLoop.scheduleTask(in: timeout) {
            promise.fail(Failure(description: "timed out after \(timeout.nanoseconds / 1_000_000) ms"))
        }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try setUp(channel) } }
        connect(bootstrap).whenComplete { result in
            switch result {
            case .success(let channel):
                channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            case .failure(let error):
                promise.fail(Failure(description: "connect to \(target): \(error)"))
            }
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }
}
