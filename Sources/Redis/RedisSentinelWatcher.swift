import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Knows the current master of a sentinel-watched set: asks the sentinels in turn
/// (`SENTINEL get-master-addr-by-name`), listens to one of them for `+switch-master`, and asks
/// again when a loop reports trouble with the master it was given (a lost connection, a
/// `READONLY` answer from a demoted one). Loops learn of a change through `onChange` and move
/// their connection; nothing is ever sent to an address the sentinels call a replica.
final class RedisSentinelWatcher: @unchecked Sendable {
    let eventLoop: EventLoop
    private let settings: RedisClient.Settings
    private let master: String
    private let sentinels: [RedisEndpoint]
    private let logger: Logger
    /// The current master, readable from any loop.
    private let known = NIOLockedValueBox<RedisEndpoint?>(nil)
    private var waiters: [EventLoopPromise<RedisEndpoint>] = []
    private var resolving = false
    private var lastResolved = NIODeadline.uptimeNanoseconds(0)
    private var recheckScheduled = false
    private var listener: RedisConnectionHandler?
    private var listenerBackoff = TimeAmount.milliseconds(100)
    private var nextSentinel = 0
    private var closed = false
    private let changes = NIOLockedValueBox<[@Sendable (RedisEndpoint) -> Void]>([])
    /// How many times the master changed while the gateway watched.
    let switches = NIOLockedValueBox<UInt64>(0)

    init(settings: RedisClient.Settings, master: String, eventLoop: EventLoop, logger: Logger) {
        self.settings = settings
        self.master = master
        sentinels = settings.url.endpoints
        self.eventLoop = eventLoop
        self.logger = logger
    }

    var current: RedisEndpoint? { known.withLockedValue { $0 } }

    /// Called (on the watcher's loop) with the new master whenever it changes.
    func onChange(_ body: @escaping @Sendable (RedisEndpoint) -> Void) {
        changes.withLockedValue { $0.append(body) }
    }

    /// Starts listening for `+switch-master` and asks for the master now.
    func start() {
        eventLoop.execute {
            self.listen()
            self.resolve()
        }
    }

    func close() {
        eventLoop.execute {
            self.closed = true
            self.listener?.close()
            for waiter in self.waiters { waiter.fail(RedisError.closed) }
            self.waiters = []
        }
    }

    /// The master (known, or asked for now), completed on `loop`.
    func masterEndpoint(on loop: EventLoop) -> EventLoopFuture<RedisEndpoint> {
        if let current { return loop.makeSucceededFuture(current) }
        return eventLoop.flatSubmit {
            let promise = self.eventLoop.makePromise(of: RedisEndpoint.self)
            self.waiters.append(promise)
            self.resolve()
            return promise.futureResult
        }.hop(to: loop)
    }

    /// A loop had trouble with `endpoint`: ask the sentinels again (at most every 250 ms).
    func recheck(_ endpoint: RedisEndpoint) {
        eventLoop.execute {
            guard !self.recheckScheduled, !self.closed else { return }
            let wait = self.lastResolved + .milliseconds(250) - .now()
            if wait <= .zero {
                self.resolve()
            } else {
                self.recheckScheduled = true
                self.eventLoop.scheduleTask(in: wait) {
                    self.recheckScheduled = false
                    self.resolve()
                }
            }
        }
    }

    // MARK: Asking

    private func resolve() {
        guard !resolving, !closed else { return }
        resolving = true
        ask(sentinel: 0)
    }

    /// Asks the sentinels one after another until one names the master.
    private func ask(sentinel index: Int) {
        guard index < sentinels.count, !closed else {
            resolving = false
            lastResolved = .now()
            let error = RedisError.connection("no sentinel named a master for '\(master)'")
            for waiter in waiters { waiter.fail(error) }
            waiters = []
            return
        }
        let handler = RedisConnectionHandler(commandTimeout: settings.commandTimeout)
        let question = RedisCommand("SENTINEL", "get-master-addr-by-name", .string(master))
        RedisConnector.connect(settings, to: sentinels[index], credentials: false, handler: handler, on: eventLoop)
            .flatMap { channel -> EventLoopFuture<RedisValue> in
                let promise = self.eventLoop.makePromise(of: RedisValue.self)
                handler.send(question, promise: promise)
                return promise.futureResult.always { _ in channel.close(promise: nil) }
            }
            .whenComplete { result in
                guard case .success(let value) = result, let parts = value.array, parts.count == 2, let host = parts[0].string,
                      let portText = parts[1].string, let port = Int(portText) else {
                    self.logger.debug("redis sentinel: no answer", metadata: ["sentinel": "\(self.sentinels[index])", "result": "\(result)"])
                    self.ask(sentinel: index + 1)
                    return
                }
                self.resolving = false
                self.lastResolved = .now()
                self.learned(RedisEndpoint(host: host, port: port))
            }
    }

    private func learned(_ endpoint: RedisEndpoint) {
        let previous = known.withLockedValue { known in
            defer { known = endpoint }
            return known
        }
        for waiter in waiters { waiter.succeed(endpoint) }
        waiters = []
        guard previous != endpoint else { return }
        if let previous {
            switches.withLockedValue { $0 &+= 1 }
            logger.warning("redis sentinel: master changed", metadata: ["master": "\(master)", "from": "\(previous)", "to": "\(endpoint)"])
        } else {
            logger.info("redis sentinel: master found", metadata: ["master": "\(master)", "at": "\(endpoint)"])
        }
        for body in changes.withLockedValue({ $0 }) { body(endpoint) }
    }

    // MARK: Listening

    /// One subscription to `+switch-master` on a sentinel, moved to the next one when lost.
    private func listen() {
        guard !closed else { return }
        let sentinel = sentinels[nextSentinel % sentinels.count]
        let handler = RedisConnectionHandler(commandTimeout: settings.commandTimeout)
        RedisConnector.connect(settings, to: sentinel, credentials: false, handler: handler, on: eventLoop)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard !self.closed else {
                        channel.close(promise: nil)
                        return
                    }
                    self.listener = handler
                    self.listenerBackoff = .milliseconds(100)
                    handler.pushHandler = { [weak self] value in self?.heard(value) }
                    handler.sendNow(RedisCommand("SUBSCRIBE", "+switch-master"))
                    channel.closeFuture.whenComplete { _ in
                        self.listener = nil
                        self.relisten()
                    }
                    // A switch may have happened before the subscription: ask once more.
                    self.resolve()
                case .failure:
                    self.relisten()
                }
            }
    }

    private func relisten() {
        guard !closed else { return }
        nextSentinel += 1
        let delay = listenerBackoff
        listenerBackoff = min(listenerBackoff * 2, .seconds(5))
        eventLoop.scheduleTask(in: delay) { self.listen() }
    }

    /// `message +switch-master "<name> <old-ip> <old-port> <new-ip> <new-port>"`.
    private func heard(_ value: RedisValue) {
        guard let parts = value.array, parts.count == 3, parts[0].string == "message", let text = parts[2].string else { return }
        let fields = text.split(separator: " ")
        guard fields.count == 5, fields[0] == master, let port = Int(fields[4]) else { return }
        learned(RedisEndpoint(host: String(fields[3]), port: port))
    }
}
