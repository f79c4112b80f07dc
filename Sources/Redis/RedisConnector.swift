import NIOCore
import NIOPosix

/// Makes one connection to `endpoint`: TCP (and TLS for `rediss://`), then AUTH and SELECT from
/// the URL before anything else goes out. Sentinels get neither (`credentials: false`): the
/// URL's credentials and database are the master's.
enum RedisConnector {
    static func connect(_ settings: RedisClient.Settings, to endpoint: RedisEndpoint, credentials: Bool = true,
                        handler: RedisConnectionHandler, on eventLoop: EventLoop) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if settings.url.tls, credentials {
                        guard let addTLSHandler = settings.addTLSHandler else { throw RedisConnectorError.noTLSContext }
                        try addTLSHandler(channel)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .flatMap { channel in
                guard credentials else { return eventLoop.makeSucceededFuture(channel) }
                return handshake(settings.url, handler: handler, on: eventLoop)
                    .map { channel }
                    .flatMapErrorThrowing { error in
                        channel.close(promise: nil)
                        throw error
                    }
            }
    }

    private static func handshake(_ url: RedisURL, handler: RedisConnectionHandler, on eventLoop: EventLoop) -> EventLoopFuture<Void> {
        var steps: [RedisCommand] = []
        if let password = url.password {
            steps.append(url.user.map { RedisCommand("AUTH", .string($0), .string(password)) } ?? RedisCommand("AUTH", .string(password)))
        }
        if url.database != 0 {
            steps.append(RedisCommand("SELECT", .int(url.database)))
        }
        if url.tls, steps.isEmpty {
            // The TLS handshake completes with the first exchange: a certificate the gateway
            // does not trust is then a failed connect, not an error on the first real command.
            steps.append(RedisCommand("PING"))
        }
        var future = eventLoop.makeSucceededVoidFuture()
        for step in steps {
            future = future.flatMap {
                let promise = eventLoop.makePromise(of: RedisValue.self)
                handler.send(step, promise: promise)
                return promise.futureResult.map { _ in }
            }
        }
        return future
    }
}

/// A `rediss://` URL without a TLS set-up: never fall back to cleartext.
struct RedisConnectorError: Error, CustomStringConvertible {
    static let noTLSContext = RedisConnectorError()
    var description: String { "rediss:// needs a TLS context (Settings.addTLSHandler)" }
}
