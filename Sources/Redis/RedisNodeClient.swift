import Logging
import NIOCore

/// One event loop's connection to one Redis server (the standalone server, the current master
/// of a sentinel set, or one cluster node): one pipelined connection, made on first use and
/// again after a loss, behind a circuit breaker. Everything here runs on `eventLoop`, like the
/// requests that call it, so the data path reaches Redis without locks or thread hops.
final class RedisNodeClient: RedisConnectionDelegate {
    let eventLoop: EventLoop
    let endpoint: RedisEndpoint
    let settings: RedisClient.Settings
    let logger: Logger
    /// Told when a connection is lost or cannot be made (a topology may have changed).
    var onTrouble: ((RedisNodeClient) -> Void)?
    private var connection: RedisConnectionHandler?
    private var connecting = false
    private var closed = false
    /// Commands that arrived while the connection was being made.
    private var waiting = CircularBuffer<(command: RedisCommand, promise: EventLoopPromise<RedisValue>, deadline: NIODeadline)>()
    private var waitingTimer: Scheduled<Void>?
    private var breaker: CircuitBreaker
    private(set) var stats = RedisStats()
    /// Loaded on every new connection, ahead of anything else: the data path's first
    /// `EVALSHA`s then find them instead of all falling back to `EVAL` at once.
    private var preloaded: [RedisScript] = []

    init(eventLoop: EventLoop, endpoint: RedisEndpoint, settings: RedisClient.Settings, logger: Logger) {
        self.eventLoop = eventLoop
        self.endpoint = endpoint
        self.settings = settings
        self.logger = logger
        breaker = CircuitBreaker(settings: settings.breaker)
    }

    /// Whether commands are being sent (the breaker is closed and a connection is up, or being
    /// made for the first time).
    var isAvailable: Bool { breaker.isClosed }

    /// Whether a connection is up now.
    var isConnected: Bool { connection != nil }

    func send(_ command: RedisCommand) -> EventLoopFuture<RedisValue> {
        eventLoop.preconditionInEventLoop()
        let promise = eventLoop.makePromise(of: RedisValue.self)
        guard !closed else {
            promise.fail(RedisError.closed)
            return promise.futureResult
        }
        guard breaker.permit(now: Int64(NIODeadline.now().uptimeNanoseconds)) else {
            stats.recordError(.unavailable)
            promise.fail(RedisError.unavailable)
            return promise.futureResult
        }
        if let connection {
            connection.send(command, promise: promise)
        } else {
            waiting.append((command, promise, .now() + settings.commandTimeout))
            if waitingTimer == nil { armWaitingTimer() }
            if !connecting { connect() }
        }
        return promise.futureResult.assumeIsolated().flatMapErrorThrowing { error in
            if let error = error as? RedisError { self.stats.recordError(error) }
            throw error
        }.nonisolated()
    }

    /// Connects now (not on the first command) and loads `scripts` on every connection.
    func warmUp(scripts: [RedisScript]) {
        preloaded = scripts
        if connection == nil, !connecting, !closed { connect() }
    }

    func close() {
        closed = true
        connection?.close()
        failWaiting(.closed)
    }

    // MARK: Connecting

    private func connect() {
        connecting = true
        let settings = self.settings
        let handler = RedisConnectionHandler(commandTimeout: settings.commandTimeout)
        handler.delegate = self
        RedisConnector.connect(settings, to: endpoint, handler: handler, on: eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                self.connecting = false
                switch result {
                case .success(let channel):
                    if self.closed {
                        channel.close(promise: nil)
                        return
                    }
                    self.connection = handler
                    self.stats.connects &+= 1
                    self.stats.connected = true
                    if self.breaker.recordSuccess() { self.breakerClosed() }
                    self.logger.debug("redis connected", metadata: ["redis": "\(self.endpoint)"])
                    for script in self.preloaded {
                        handler.send(RedisCommand("SCRIPT", "LOAD", .string(script.source)), promise: self.eventLoop.makePromise())
                    }
                    while let item = self.waiting.popFirst() {
                        handler.send(item.command, promise: item.promise)
                    }
                case .failure(let error):
                    self.stats.connectFailures &+= 1
                    let reason = (error as? RedisError)?.description ?? "\(error)"
                    self.failWaiting(.connection(reason))
                    self.recordFailure(reason: reason)
                    self.onTrouble?(self)
                }
            }
    }

    private func armWaitingTimer() {
        guard let first = waiting.first else { return }
        waitingTimer = eventLoop.assumeIsolated().scheduleTask(deadline: first.deadline) {
            self.waitingTimer = nil
            let now = NIODeadline.now()
            while let first = self.waiting.first, first.deadline <= now {
                self.waiting.removeFirst()
                first.promise.fail(RedisError.timeout)
            }
            self.armWaitingTimer()
        }
    }

    private func failWaiting(_ error: RedisError) {
        while let item = waiting.popFirst() { item.promise.fail(error) }
        waitingTimer?.cancel()
        waitingTimer = nil
    }

    private func recordFailure(reason: String) {
        if breaker.recordFailure(now: Int64(NIODeadline.now().uptimeNanoseconds)) {
            stats.breakerOpenings &+= 1
            stats.breakerOpen = true
            logger.warning("redis circuit open: commands fail fast, the cache is bypassed", metadata: [
                "redis": "\(endpoint)", "reason": "\(reason)", "failures": "\(breaker.consecutiveFailures)"])
        }
    }

    private func breakerClosed() {
        stats.breakerOpen = false
        logger.info("redis circuit closed: Redis answers again", metadata: ["redis": "\(endpoint)"])
    }

    // MARK: RedisConnectionDelegate

    func redisReplied(latencyNanoseconds: Int64) {
        stats.recordReply(nanoseconds: latencyNanoseconds)
        if breaker.consecutiveFailures > 0 || !breaker.isClosed {
            if breaker.recordSuccess() { breakerClosed() }
        }
    }

    func redisTimedOut() {
        recordFailure(reason: "command timed out")
        onTrouble?(self)
    }

    func redisConnectionClosed(_ handler: RedisConnectionHandler) {
        guard connection === handler else { return }
        connection = nil
        stats.connected = false
        if !closed {
            logger.warning("redis connection lost", metadata: ["redis": "\(endpoint)"])
            recordFailure(reason: "connection lost")
            onTrouble?(self)
        }
    }
}
