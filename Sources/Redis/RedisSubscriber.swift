import Logging
import NIOCore

/// A connection that listens on one pub/sub channel, and reconnects (100 ms, doubling to 5 s)
/// whenever it is lost, to where the client says (the current master of a sentinel set; the
/// next seed of a cluster). `onState(true)` once subscribed, `onState(false)` when the connection
/// is lost: messages published meanwhile are gone, which listeners must allow for (the near
/// cache empties itself).
public final class RedisSubscriber: @unchecked Sendable {
    private let client: RedisClient
    private var settings: RedisClient.Settings { client.settings }
    private var failures = 0
    private let channel: String
    private let eventLoop: EventLoop
    private let logger: Logger
    private let onMessage: @Sendable (ByteBuffer) -> Void
    private let onState: @Sendable (Bool) -> Void
    private var handler: RedisConnectionHandler?
    private var closed = false
    private var backoff = TimeAmount.milliseconds(100)
    private var retry: Scheduled<Void>?

    public init(client: RedisClient, channel: String, eventLoop: EventLoop, logger: Logger,
                onMessage: @escaping @Sendable (ByteBuffer) -> Void, onState: @escaping @Sendable (Bool) -> Void) {
        self.client = client
        self.channel = channel
        self.eventLoop = eventLoop
        self.logger = logger
        self.onMessage = onMessage
        self.onState = onState
    }

    public func start() {
        eventLoop.execute { self.connect() }
    }

    public func close() async {
        try? await eventLoop.submit {
            self.closed = true
            self.retry?.cancel()
            self.handler?.close()
        }.get()
    }

    private func connect() {
        guard !closed else { return }
        let handler = RedisConnectionHandler(commandTimeout: settings.commandTimeout)
        let channelName = channel
        let settings = self.settings
        let eventLoop = self.eventLoop
        client.subscriptionEndpoint(attempt: failures, on: eventLoop)
            .flatMap { RedisConnector.connect(settings, to: $0, handler: handler, on: eventLoop) }
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let connection):
                    if self.closed {
                        connection.close(promise: nil)
                        return
                    }
                    self.handler = handler
                    self.failures = 0
                    handler.pushHandler = { [weak self] value in self?.received(value) }
                    handler.sendNow(RedisCommand("SUBSCRIBE", .string(channelName)))
                    connection.closeFuture.assumeIsolated().whenComplete { _ in self.lost() }
                case .failure(let error):
                    self.failures += 1
                    self.logger.debug("redis subscriber: connect failed", metadata: ["error": "\(error)"])
                    self.scheduleRetry()
                }
            }
    }

    private func received(_ value: RedisValue) {
        guard let parts = value.array, parts.count == 3, let kind = parts[0].string else { return }
        switch kind {
        case "subscribe":
            backoff = .milliseconds(100)
            logger.debug("redis subscriber: subscribed", metadata: ["channel": "\(channel)"])
            onState(true)
        case "message":
            if let payload = parts[2].bytes { onMessage(payload) }
        default:
            break
        }
    }

    private func lost() {
        handler = nil
        failures += 1
        onState(false)
        guard !closed else { return }
        logger.warning("redis subscriber: connection lost; reconnecting", metadata: ["channel": "\(channel)"])
        scheduleRetry()
    }

    private func scheduleRetry() {
        guard !closed else { return }
        let delay = backoff
        backoff = min(backoff * 2, .seconds(5))
        retry = eventLoop.assumeIsolated().scheduleTask(in: delay) { self.connect() }
    }
}
