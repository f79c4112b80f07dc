import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Router

/// The two database questions read-your-writes asks on the request path, answered off the
/// event loops (libpq on a thread pool) and shared between requests:
///
/// - "What is the primary's WAL position now?" after a write: one query serves every write
///   that completed before it started; a write completing while a query runs waits for the next
///   one (an earlier query could return a position before that write's commit).
/// - "Has any of these replicas replayed position X yet?" for a read that must see its own
///   write: while reads wait on a database, one probe stream polls its replay position and
///   answers all of them.
final class ConsistencyQueries: Sendable {
    private let threadPool: NIOThreadPool
    private let timeoutNanoseconds: Int64
    private let lsnConnections: [PostgresProbeConnection]
    private let replayConnections: [PostgresProbeConnection]
    private let fetches: [NIOLockedValueBox<FetchState>]
    private let watches: [NIOLockedValueBox<WatchState>]

    struct FetchState {
        var running = false
        var waiting: [EventLoopPromise<LSN>] = []
    }

    final class ReplayWaiter: @unchecked Sendable {
        let target: LSN
        let deadline: NIODeadline
        let promise: EventLoopPromise<Int?>
        private let done = NIOLockedValueBox(false)

        init(target: LSN, deadline: NIODeadline, promise: EventLoopPromise<Int?>) {
            self.target = target
            self.deadline = deadline
            self.promise = promise
        }

        /// Completes once, whichever database answers first.
        func finish(_ database: Int?) -> Bool {
            let first = done.withLockedValue { done -> Bool in
                defer { done = true }
                return !done
            }
            if first { promise.succeed(database) }
            return first
        }

        var isDone: Bool { done.withLockedValue { $0 } }
    }

    struct WatchState {
        var running = false
        var waiters: [ReplayWaiter] = []
    }

    init(connectionStrings: [String], threadPool: NIOThreadPool, timeout: ConfigDuration) {
        self.threadPool = threadPool
        timeoutNanoseconds = timeout.nanoseconds
        lsnConnections = connectionStrings.map { PostgresProbeConnection(connectionString: $0) }
        replayConnections = connectionStrings.map { PostgresProbeConnection(connectionString: $0) }
        fetches = connectionStrings.map { _ in NIOLockedValueBox(FetchState()) }
        watches = connectionStrings.map { _ in NIOLockedValueBox(WatchState()) }
    }

    func close() {
        for connection in lsnConnections + replayConnections { connection.close() }
    }

    // MARK: The primary's position after a write

    func currentLSN(database: Int, on eventLoop: EventLoop) -> EventLoopFuture<LSN> {
        let promise = eventLoop.makePromise(of: LSN.self)
        let start = fetches[database].withLockedValue { state -> Bool in
            state.waiting.append(promise)
            guard !state.running else { return false }
            state.running = true
            return true
        }
        if start { runFetch(database) }
        return promise.futureResult
    }

    private func runFetch(_ database: Int) {
        let batch = fetches[database].withLockedValue { state -> [EventLoopPromise<LSN>] in
            defer { state.waiting = [] }
            return state.waiting
        }
        let connection = lsnConnections[database]
        let timeout = timeoutNanoseconds
        threadPool.submit { state in
            guard case .active = state else {
                for promise in batch { promise.fail(ProbeError(description: "shutting down")) }
                return
            }
            do {
                let lsn = try connection.queryLSN("SELECT pg_current_wal_lsn()::text", timeoutNanoseconds: timeout)
                for promise in batch { promise.succeed(lsn) }
            } catch {
                for promise in batch { promise.fail(error) }
            }
            let again = self.fetches[database].withLockedValue { state -> Bool in
                if state.waiting.isEmpty { state.running = false }
                return !state.waiting.isEmpty
            }
            if again { self.runFetch(database) }
        }
    }

    // MARK: Waiting for a replica to replay a position

    /// Completes with the first of `databases` that has replayed `target`, or nil at the deadline.
    func waitForReplay(databases: [Int], target: LSN, timeout: TimeAmount, on eventLoop: EventLoop) -> EventLoopFuture<Int?> {
        let waiter = ReplayWaiter(target: target, deadline: .now() + timeout, promise: eventLoop.makePromise(of: Int?.self))
        for database in databases {
            let start = watches[database].withLockedValue { state -> Bool in
                state.waiters.append(waiter)
                guard !state.running else { return false }
                state.running = true
                return true
            }
            if start { runWatch(database) }
        }
        return waiter.promise.futureResult
    }

    /// Polls one replica's replay position while reads wait on it (a few ms apart).
    private func runWatch(_ database: Int) {
        let connection = replayConnections[database]
        let timeout = min(timeoutNanoseconds, 500_000_000)
        threadPool.submit { state in
            var replayed: LSN?
            if case .active = state {
                replayed = try? connection.queryLSN("SELECT pg_last_wal_replay_lsn()::text", timeoutNanoseconds: timeout)
            }
            let now = NIODeadline.now()
            let (finished, pending) = self.watches[database].withLockedValue { watch -> ([(ReplayWaiter, Int?)], Bool) in
                var finished: [(ReplayWaiter, Int?)] = []
                watch.waiters.removeAll { waiter in
                    if waiter.isDone { return true }
                    if let replayed, replayed >= waiter.target {
                        finished.append((waiter, database))
                        return true
                    }
                    if waiter.deadline <= now || !(state.isActive) {
                        finished.append((waiter, nil))
                        return true
                    }
                    return false
                }
                if watch.waiters.isEmpty { watch.running = false }
                return (finished, !watch.waiters.isEmpty)
            }
            for (waiter, result) in finished {
                // A deadline answers "nil" only once every database's watch has given up on it;
                // a success answers at once.
                if result != nil || waiter.deadline <= now { _ = waiter.finish(result) }
            }
            if pending {
                usleep(2000)
                self.runWatch(database)
            }
        }
    }
}

extension NIOThreadPool.WorkItemState {
    var isActive: Bool {
        if case .active = self { return true }
        return false
    }
}
