import Cache
import HTTPWire
import NIOCore
import Router

/// Read-your-writes (`consistency:`), on every route when a mode is set. A read's token (header,
/// cookie, or the store by identity) becomes the Router's requirement; a read that only the
/// primary could serve waits up to `max_wait` for a replica to replay the client's write;
/// a successful write's response carries a new token (an LSN from the API's header or the
/// primary, else a time pin), and the head waits for it so that the client's next request
/// already has it.
final class ReadYourWritesFilter: ExchangeFilter, Sendable {
    let consistency: ConsistencyRuntime

    init(consistency: ConsistencyRuntime) {
        self.consistency = consistency
    }

    func request(_ exchange: Exchange) -> FilterVerdict {
        let state = ReadYourWrites.prepare(exchange.head, identity: { exchange.identity }, runtime: exchange.runtime)
        exchange.filters.readYourWrites = state
        exchange.decision.requirement = state.requirement
        if state.isRead, consistency.sharedStore, let identity = state.identity {
            return lookUpShared(identity, exchange)
        }
        return .next
    }

    /// `store: redis`: a read without a token of its own waits for the identity's token in
    /// Redis. Redis not answering, nobody can tell whether the client just wrote: the read goes
    /// to the primary (never a stale answer).
    private func lookUpShared(_ identity: String, _ exchange: Exchange) -> FilterVerdict {
        guard let redis = exchange.generation.redis else {
            exchange.filters.readYourWrites!.require(.init(requirement: .primaryUntil(.max), expires: .max), now: 0)
            exchange.decision.requirement = exchange.filters.readYourWrites!.requirement
            return .next
        }
        let now = ConsistencyRuntime.unixMilliseconds()
        return exchange.wait(for: RedisConsistencyStore.lookup(identity, now: now / 1000, client: redis)) { result in
            let token: ConsistencyToken?
            switch result {
            case .success(let found): token = found
            case .failure:
                exchange.runtime.metrics.countEvent("gateway_consistency_store_errors_total", [("operation", "lookup")])
                token = ConsistencyToken(requirement: .primaryUntil(.max), expires: .max)
            }
            exchange.filters.readYourWrites!.require(token, now: now)
            exchange.decision.requirement = exchange.filters.readYourWrites!.requirement
            return .next
        }
    }

    /// A read that must see the client's own write, where only the primary has it yet, waits a
    /// little for a replica to replay it before settling for the primary.
    func picked(_ exchange: Exchange) -> FilterVerdict {
        guard let state = exchange.filters.readYourWrites else { return .next }
        let decision = exchange.decision
        let runtime = exchange.runtime
        if !state.waited, case .replayed(let needed) = decision.requirement, decision.toWritePool || decision.pool == nil,
           let queries = exchange.generation.consistencyQueries, consistency.maxWait.nanoseconds > 0 {
            let candidates = runtime.router.replicaCandidates(region: decision.region, state: exchange.generation.routingState)
            let databases = Set(candidates.compactMap { runtime.poolDatabase[$0] })
            if !databases.isEmpty {
                exchange.filters.readYourWrites!.waited = true
                let started = NIODeadline.now()
                let replay = queries.waitForReplay(databases: Array(databases), target: needed, timeout: consistency.maxWait,
                                                   on: exchange.loop.eventLoop)
                return exchange.wait(for: replay) { result in
                    self.replayed((try? result.get()) ?? nil, needed, since: started, exchange)
                }
            }
        }
        exchange.filters.readYourWrites!.settle(decision, state: exchange.generation.routingState, router: runtime.router)
        if let outcome = exchange.filters.readYourWrites!.outcome {
            runtime.metrics.countEvent("gateway_consistency_reads_total", [("outcome", outcome.rawValue)])
        }
        return .next
    }

    /// The wait is over: a replica caught up (its pools can serve the position at once), or the
    /// primary will serve. The pick is made again.
    private func replayed(_ database: Int?, _ needed: LSN, since started: NIODeadline, _ exchange: Exchange) -> FilterVerdict {
        if let database {
            exchange.generation.noteReplay(database: database, lsn: needed)
            exchange.filters.readYourWrites?.outcome = .waited
        } else {
            exchange.filters.readYourWrites?.outcome = .primaryPinned
        }
        exchange.runtime.metrics.recordConsistencyWait(nanoseconds: (NIODeadline.now() - started).nanoseconds)
        return .next
    }

    /// A token after a successful write (2xx/3xx); with `store: redis`, the head waits until
    /// Redis has it (the client's next request may reach another instance at once).
    func responseHead(_ exchange: Exchange, _ head: HTTPHead) -> EventLoopFuture<Void>? {
        let issuing = issueToken(exchange, head)
        guard consistency.sharedStore, exchange.filters.readYourWrites?.identity != nil else { return issuing }
        guard let issuing else { return recordShared(exchange) }
        return issuing.flatMap { self.recordShared(exchange) ?? exchange.loop.eventLoop.makeSucceededVoidFuture() }
    }

    /// Records the token just issued under the write's identity in Redis (a failure is counted
    /// and the response goes on: the client still has its cookie and header).
    private func recordShared(_ exchange: Exchange) -> EventLoopFuture<Void>? {
        guard let state = exchange.filters.readYourWrites, let identity = state.identity, let token = state.issuedToken,
              let redis = exchange.generation.redis else { return nil }
        let metrics = exchange.runtime.metrics
        return RedisConsistencyStore.record(token, for: identity, ttlMilliseconds: consistency.ttlSeconds * 1000, client: redis)
            .flatMapErrorThrowing { _ in metrics.countEvent("gateway_consistency_store_errors_total", [("operation", "record")]) }
    }

    private func issueToken(_ exchange: Exchange, _ head: HTTPHead) -> EventLoopFuture<Void>? {
        guard !exchange.decision.isRead, exchange.filters.readYourWrites != nil, (200..<400).contains(head.status) else { return nil }
        switch consistency.settings.mode {
        case .none:
            return nil
        case .time:
            let issued = issuePin(exchange, kind: "time")
            exchange.filters.readYourWrites!.issued = issued
            return nil
        case .lsn:
            if let position = exchange.reportedWritePosition(head) {
                let issued = issue(.replayed(position), exchange, kind: "lsn_header")
                exchange.filters.readYourWrites!.issued = issued
                return nil
            }
            guard exchange.canQueryWritePosition else {
                let issued = issuePin(exchange, kind: "lsn_unavailable")
                exchange.filters.readYourWrites!.issued = issued
                return nil
            }
            return exchange.writePosition(head).assumeIsolated().map { lsn in
                let issued = lsn.map { self.issue(.replayed($0), exchange, kind: "lsn") } ?? self.issuePin(exchange, kind: "lsn_unavailable")
                exchange.filters.readYourWrites?.issued = issued
            }.nonisolated()
        }
    }

    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int {
        guard kind == .upstream, let state = exchange.filters.readYourWrites else { return 0 }
        var length = state.issued.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
        if state.dropToken { length += consistency.dropHeaders.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 } }
        if exchange.runtime.config.debugHeaders, state.outcome != nil { length += 48 }
        return length
    }

    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {
        guard kind == .upstream, let state = exchange.filters.readYourWrites else { return }
        for (name, value) in state.issued { writer.header(name, value) }
        if state.dropToken {
            for (name, value) in consistency.dropHeaders { writer.header(name, value) }
        }
        if exchange.runtime.config.debugHeaders, let outcome = state.outcome {
            writer.header("X-Gateway-Consistency", outcome.rawValue)
        }
    }

    /// A time pin (time mode, or lsn mode when the position could not be had).
    private func issuePin(_ exchange: Exchange, kind: String) -> [(String, String)] {
        issue(.primaryUntil(ConsistencyRuntime.unixMilliseconds() + consistency.stickyForMilliseconds), exchange, kind: kind)
    }

    private func issue(_ requirement: ConsistencyToken.Requirement, _ exchange: Exchange, kind: String) -> [(String, String)] {
        let now = ConsistencyRuntime.unixMilliseconds() / 1000
        let token = ConsistencyToken(requirement: requirement, expires: now + consistency.ttlSeconds)
        if let store = consistency.store, let identity = exchange.filters.readYourWrites?.identity {
            store.record(token, for: identity, now: now)
        }
        exchange.filters.readYourWrites?.issuedToken = token
        exchange.runtime.metrics.countEvent("gateway_consistency_tokens_total", [("kind", kind)])
        return consistency.issueHeaders(token)
    }
}
