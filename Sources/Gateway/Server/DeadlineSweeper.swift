import NIOCore

/// Something with one deadline at a time (a client connection: header, body, response,
/// keep-alive...).
protocol TimedConnection: AnyObject {
    var deadline: NIODeadline { get }
    func deadlineExpired(now: NIODeadline)
    /// Every tick the deadline has not passed (a chance to shed what an idle connection holds).
    func swept(now: NIODeadline)
}

extension TimedConnection {
    func swept(now: NIODeadline) {}
}

/// Checks every connection of one event loop against its deadline every `interval`.
///
/// Timeouts change several times per request; scheduling and cancelling an NIO task for each
/// would cost an allocation and a heap operation every time. Here arming a timeout is one store,
/// and the price is precision: a timeout fires up to `interval` late.
final class DeadlineSweeper {
    private var members: [ObjectIdentifier: TimedConnection] = [:]
    private var task: RepeatedTask?
    /// Extra work per tick (closing idle upstream connections).
    var onTick: ((NIODeadline) -> Void)?

    var count: Int { members.count }

    func add(_ member: TimedConnection) {
        members[ObjectIdentifier(member)] = member
    }

    func remove(_ member: TimedConnection) {
        members.removeValue(forKey: ObjectIdentifier(member))
    }

    var all: Dictionary<ObjectIdentifier, TimedConnection>.Values { members.values }

    func start(on eventLoop: EventLoop, interval: TimeAmount) {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        task = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            loopBound.value.sweep(now: .now())
        }
    }

    func stop() {
        task?.cancel()
        task = nil
    }

    func sweep(now: NIODeadline) {
        for member in members.values {
            if member.deadline <= now {
                member.deadlineExpired(now: now)
            } else {
                member.swept(now: now)
            }
        }
        onTick?(now)
    }
}
