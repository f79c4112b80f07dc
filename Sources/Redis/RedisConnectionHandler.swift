import NIOCore

/// Callbacks of one connection to the client that owns it (same event loop).
protocol RedisConnectionDelegate: AnyObject {
    /// A reply arrived (any reply, error replies included: the server is alive).
    func redisReplied(latencyNanoseconds: Int64)
    /// A command got no reply within the timeout.
    func redisTimedOut()
    /// The connection is gone.
    func redisConnectionClosed(_ handler: RedisConnectionHandler)
}

/// One Redis connection: commands go out as they come (pipelined; one flush per event-loop
/// tick for all of them), replies come back in order and complete the oldest command.
///
/// A command that times out is failed at once but keeps its place in the queue, so the reply
/// that may still come is matched to it and dropped; the connection survives a slow moment.
/// A connection that answers nothing for `hungAfter` is closed.
///
/// Sendable by contract, as NIO handlers are: it is only ever touched on its channel's loop.
final class RedisConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Pending {
        let promise: EventLoopPromise<RedisValue>
        let sentAt: NIODeadline
    }

    private let reader = RESPReader()
    private var queue = CircularBuffer<Pending>(initialCapacity: 16)
    /// How many commands at the front of the queue have been failed by their timeout.
    private var timedOutCount = 0
    private var context: ChannelHandlerContext?
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var timerDeadline = NIODeadline.distantFuture
    private let commandTimeout: TimeAmount
    private let hungAfter: TimeAmount
    weak var delegate: RedisConnectionDelegate?
    /// Subscriber connections get every reply here instead of matching it to a command.
    var pushHandler: ((RedisValue) -> Void)?
    private(set) var isActive = false

    init(commandTimeout: TimeAmount) {
        self.commandTimeout = commandTimeout
        hungAfter = max(.seconds(1), commandTimeout * 10)
    }

    var outstanding: Int { queue.count }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isActive = context.channel.isActive
    }

    /// The context holds this handler: dropping it here breaks the cycle that would leak both.
    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        context.fireChannelActive()
    }

    func send(_ command: RedisCommand, promise: EventLoopPromise<RedisValue>) {
        // NIO completes the connect promise before it fires channelActive.
        if !isActive, let context { isActive = context.channel.isActive }
        guard isActive, let context else {
            promise.fail(RedisError.connection("not connected"))
            return
        }
        let now = NIODeadline.now()
        queue.append(Pending(promise: promise, sentAt: now))
        context.write(wrapOutboundOut(command.encoded), promise: nil)
        if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                self.context?.flush()
            }
        }
        let deadline = now + commandTimeout
        if timer == nil || deadline < timerDeadline {
            timer?.cancel()
            armTimer(for: deadline)
        }
    }

    /// Sends without waiting for a flush of the tick (subscriber commands, handshakes).
    func sendNow(_ command: RedisCommand) {
        if !isActive, let context { isActive = context.channel.isActive }
        guard isActive, let context else { return }
        context.writeAndFlush(wrapOutboundOut(command.encoded), promise: nil)
    }

    func close() {
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try reader.feed(unwrapInboundIn(data))
            var now: NIODeadline?
            while let value = try reader.next() {
                if let pushHandler {
                    pushHandler(value)
                    continue
                }
                guard let pending = queue.popFirst() else {
                    throw RedisError.protocolError("a reply nobody asked for")
                }
                if timedOutCount > 0 {
                    timedOutCount -= 1
                    continue
                }
                let at = now ?? .now()
                now = at
                delegate?.redisReplied(latencyNanoseconds: (at - pending.sentAt).nanoseconds)
                if case .error(let message) = value {
                    pending.promise.fail(RedisError.reply(message))
                } else {
                    pending.promise.succeed(value)
                }
            }
        } catch {
            failAll(error as? RedisError ?? .protocolError("\(error)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        timer?.cancel()
        timer = nil
        failAll(.connection("connection closed"))
        delegate?.redisConnectionClosed(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(.connection("\(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        var index = 0
        while let pending = queue.popFirst() {
            if index >= timedOutCount { pending.promise.fail(error) }
            index += 1
        }
        timedOutCount = 0
    }

    // MARK: Timeouts

    private func armTimer(for deadline: NIODeadline) {
        guard let context else { return }
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            self.checkTimeouts()
        }
    }

    /// Fails the commands past their deadline (the queue is in sending order, so they are the
    /// oldest), closes a connection that stopped answering, and re-arms for the next deadline.
    private func checkTimeouts() {
        let now = NIODeadline.now()
        var index = timedOutCount
        var timedOut = false
        while index < queue.count, queue[queue.index(queue.startIndex, offsetBy: index)].sentAt + commandTimeout <= now {
            queue[queue.index(queue.startIndex, offsetBy: index)].promise.fail(RedisError.timeout)
            index += 1
            timedOut = true
        }
        timedOutCount = index
        if timedOut { delegate?.redisTimedOut() }
        if timedOutCount > 0, let oldest = queue.first, now - oldest.sentAt >= hungAfter {
            failAll(.timeout)
            context?.close(promise: nil)
            return
        }
        if timedOutCount < queue.count {
            armTimer(for: queue[queue.index(queue.startIndex, offsetBy: timedOutCount)].sentAt + commandTimeout)
        } else if let oldest = queue.first {
            armTimer(for: oldest.sentAt + hungAfter)
        }
    }
}
