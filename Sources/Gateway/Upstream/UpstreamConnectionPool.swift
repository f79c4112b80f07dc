import NIOCore

/// What waits for a connection from a pool (a client connection with a request to forward).
protocol UpstreamLeaseRequester: AnyObject {
    func leaseSucceeded(_ connection: UpstreamConnection)
    func leaseFailed(_ failure: UpstreamFailure)
}

/// The keep-alive connections of one event loop to one upstream server. Only its own loop
/// touches it, so the hot path takes no locks: a lease pops the most recently used idle
/// connection (warm, and lets the others age out), else opens one while under the cap, else
/// queues the requester until a connection comes back.
final class UpstreamConnectionPool {
    let server: UpstreamServer
    let eventLoop: EventLoop
    private let connector: UpstreamConnector
    /// This loop's share of the server's `max_connections`.
    let maxConnections: Int
    private let maxHeadBytes: Int

    private var idle: [UpstreamConnection] = []
    /// Connecting, idle and leased connections.
    private(set) var openCount = 0
    private var waiters = CircularBuffer<UpstreamLeaseRequester>()
    /// Connects started for a requester that may have gone away since.
    private var connectsInFlight: [ObjectIdentifier: UpstreamLeaseRequester] = [:]
    private var closed = false
    private var retired = false

    private(set) var connectFailures = 0
    private(set) var connectionsOpened = 0

    init(server: UpstreamServer, eventLoop: EventLoop, connector: UpstreamConnector, maxConnections: Int, maxHeadBytes: Int) {
        self.server = server
        self.eventLoop = eventLoop
        self.connector = connector
        self.maxConnections = max(1, maxConnections)
        self.maxHeadBytes = maxHeadBytes
    }

    var idleCount: Int { idle.count }
    var waitingCount: Int { waiters.count }

    enum LeaseResult {
        case ready(UpstreamConnection)
        /// The requester's `leaseSucceeded` or `leaseFailed` will be called later.
        case pending
    }

    /// `now`: the caller's clock reading when it has one from a moment ago (an exchange's
    /// start); a connection that went idle microseconds later still counts as just released.
    func lease(for requester: UpstreamLeaseRequester, now: NIODeadline = .now()) -> LeaseResult {
        while let connection = idle.popLast() {
            // Past its idle limit it may be closing at the other end: never reuse it (the
            // sweeper that closes it runs only every 100 ms).
            if connection.reusable(now: now) { return .ready(connection) }
            connection.close()
        }
        guard !closed else {
            return .pending.failing(requester, with: .noServer, on: eventLoop)
        }
        if openCount < maxConnections {
            startConnect(for: requester)
        } else {
            waiters.append(requester)
        }
        return .pending
    }

    /// The requester no longer wants a connection (timed out, or its client left).
    func cancel(_ requester: UpstreamLeaseRequester) {
        if let index = waiters.firstIndex(where: { $0 === requester }) {
            waiters.remove(at: index)
        }
        connectsInFlight.removeValue(forKey: ObjectIdentifier(requester))
    }

    /// A connection comes back after an exchange. Unless it can carry another request it is
    /// closed; otherwise the first waiter gets it, or it goes idle.
    /// `now`: the caller's reading of the clock, if it has one.
    func release(_ connection: UpstreamConnection, reusable: Bool, now: NIODeadline? = nil) {
        connection.owner = nil
        connection.resumeReading()
        guard reusable, connection.isActive, !closed, connection.parser.isIdle, !retired || !waiters.isEmpty else {
            connection.close()
            return
        }
        if let waiter = waiters.popFirst() {
            handOver(connection, to: waiter)
            return
        }
        connection.idleSince = now ?? .now()
        connection.parser.releaseConsumedBytes()
        idle.append(connection)
    }

    /// Called once when a connection's channel goes inactive.
    func connectionClosed(_ connection: UpstreamConnection) {
        guard !connection.closeAccounted else { return }
        connection.closeAccounted = true
        openCount -= 1
        if let index = idle.firstIndex(where: { $0 === connection }) {
            idle.remove(at: index)
        }
        serveWaitersWithNewConnections()
    }

    /// Closes the idle connections past their idle limit.
    func closeIdle(now: NIODeadline) {
        guard idle.contains(where: { !$0.reusable(now: now) }) else { return }
        let expired = idle.filter { !$0.reusable(now: now) }
        idle.removeAll { !$0.reusable(now: now) }
        // Closing may report the channel inactive at once, which looks at `idle`: after the removal.
        for connection in expired { connection.close() }
    }

    /// Shutdown: idle connections close, waiters fail, leased ones close when released.
    func close() {
        closed = true
        for connection in idle { connection.close() }
        idle.removeAll()
        while let waiter = waiters.popFirst() {
            waiter.leaseFailed(.noServer)
        }
    }

    /// A configuration reload removed or changed the server: idle connections close now; the
    /// requests of the old configuration still in flight finish, and their connections close
    /// when released instead of going idle.
    func retire() {
        retired = true
        let idle = self.idle
        self.idle.removeAll()
        for connection in idle { connection.close() }
    }

    /// Retired, with no connection open and nobody waiting: nothing refers to it any more.
    var isFinished: Bool { retired && openCount == 0 && waiters.isEmpty && connectsInFlight.isEmpty }

    // MARK: Connecting

    private func startConnect(for requester: UpstreamLeaseRequester) {
        openCount += 1
        connectionsOpened += 1
        let key = ObjectIdentifier(requester)
        connectsInFlight[key] = requester
        let connection = UpstreamConnection(server: server, pool: self, maxHeadBytes: maxHeadBytes)
        connector.connect(to: server, on: eventLoop, handler: connection)
            .assumeIsolated()
            .whenComplete { result in
                let waiting = self.connectsInFlight.removeValue(forKey: key)
                switch result {
                case .success:
                    connection.connected()
                    if let waiting, waiting === requester {
                        requester.leaseSucceeded(connection)
                    } else {
                        // Its requester left: the connection serves the queue or goes idle.
                        self.release(connection, reusable: true)
                    }
                case .failure(let error):
                    if !connection.closeAccounted {
                        connection.closeAccounted = true
                        self.openCount -= 1
                    }
                    self.connectFailures += 1
                    var failure = UpstreamFailure.connectRefused
                    if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                        failure = .connectTimeout
                    }
                    waiting?.leaseFailed(failure)
                    // Waiters queued behind a full pool fail the same way instead of waiting
                    // for a connection that is not coming.
                    if self.openCount == 0 {
                        while let waiter = self.waiters.popFirst() { waiter.leaseFailed(failure) }
                    }
                }
            }
    }

    private func serveWaitersWithNewConnections() {
        while !closed, openCount < maxConnections, let waiter = waiters.popFirst() {
            startConnect(for: waiter)
        }
    }

    /// Hands a connection to a queued requester on the next loop tick, outside the releasing
    /// client's call stack.
    private func handOver(_ connection: UpstreamConnection, to waiter: UpstreamLeaseRequester) {
        connection.owner = nil
        eventLoop.assumeIsolated().execute {
            if connection.isActive {
                waiter.leaseSucceeded(connection)
            } else {
                // Lost meanwhile: the waiter asks again.
                switch self.lease(for: waiter) {
                case .ready(let other): waiter.leaseSucceeded(other)
                case .pending: break
                }
            }
        }
    }
}

extension UpstreamConnectionPool.LeaseResult {
    /// `.pending`, with the failure delivered on the next tick (never re-entrantly).
    fileprivate func failing(_ requester: UpstreamLeaseRequester, with failure: UpstreamFailure, on eventLoop: EventLoop) -> Self {
        eventLoop.assumeIsolated().execute { requester.leaseFailed(failure) }
        return .pending
    }
}
