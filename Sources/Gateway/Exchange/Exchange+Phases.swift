import NIOCore

/// What a suspended filter does once its wait is over (run only if the exchange is still live).
typealias FilterResumption = () -> FilterVerdict

/// A request's phases, in order — the one place that lists them, as Pingora's
/// `process_request` does:
///
/// 1. **identify** (`init`): request ID, client address, route and region, the route's filters.
///    A `redirect_https` listener answers here with the HTTPS URL.
/// 2. **request**: each filter's `request` hook in chain order — CORS, auth, rate limit,
///    read-your-writes, cache lookup — says next, respond, serve, or suspend.
/// 3. **upstream**: the router picks a server under the request's requirement; `picked` hooks
///    may wait for a better one (read-your-writes); `upstreamRequest` hooks prepare the attempt;
///    a pooled connection is leased and the request sent (`Exchange+Upstream`).
/// 4. **response**: `responseHead` hooks (cache admission, a write's token and invalidations)
///    may hold the upstream's head; `ResponseComposer` writes it with every filter's fields;
///    body parts pass `responseBody` hooks. Failures retry, fall back to a stale entry, or
///    answer with an error, as `ExchangeStateMachine` decides.
/// 5. **end** (`finish`): `end` hooks, the attempt's outcome, one log line — exactly once.
extension Exchange {
    /// Runs the exchange from its request phase on.
    func start() {
        if let port = peer.redirectHTTPS {
            // A cleartext listener that only sends clients to HTTPS.
            return respond(HTTPSRedirect.response(for: head, port: port, requestID: requestID))
        }
        if head.isAsteriskForm {
            // OPTIONS * asks about the server as a whole: the gateway answers for itself.
            guard head.method == .options else {
                return respond(LocalResponse.error(400, "the target * is for OPTIONS only", requestID: requestID, errorKind: "bad_request"))
            }
            return respond(LocalResponse(status: 200, headers: [("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")]))
        }
        if pathRefused {
            return respond(LocalResponse.error(400, "escaped slash in the path (escaped_slashes: reject)", requestID: requestID,
                                               errorKind: "bad_request"))
        }
        runRequestFilters(from: 0)
    }

    // MARK: 2. Request

    private func runRequestFilters(from first: Int) {
        var position = first
        while position < chain.count {
            let verdict = chain.request(at: position, self)
            guard case .next = verdict else { return carryOut(verdict, at: position) }
            position += 1
        }
        forwardUpstream()
    }

    private func carryOut(_ verdict: FilterVerdict, at position: Int) {
        switch verdict {
        case .next: runRequestFilters(from: position + 1)
        case .respond(let response): respond(response)
        case .serve(let answer): serve(answer)
        case .suspend(let wait): suspend(wait) { self.carryOut($0, at: position) }
        }
    }

    /// The one place an exchange waits for something before it can go on (Redis, another
    /// request's fetch, a replica): the downstream reads no more and runs no deadline for it
    /// meanwhile (each wait has its own limit). When the wait is over, and only if the client
    /// is still there, the filter's resumption decides what comes next.
    func suspend(_ wait: EventLoopFuture<FilterResumption>, then resume: @escaping (FilterVerdict) -> Void) {
        suspended = true
        hasWaited = true
        downstream.exchangeSuspended()
        wait.assumeIsolated().whenComplete { result in
            self.suspended = false
            guard !self.ended else { return }
            self.downstream.exchangeResumed()
            let verdict: FilterVerdict
            switch result {
            case .success(let resumption): verdict = resumption()
            case .failure: verdict = .next
            }
            resume(verdict)
            self.downstream.flush()
        }
    }

    /// How a filter waits: returns the verdict that parks the exchange until `future`
    /// completes; `then` decides what comes next (only if the client is still there).
    func wait<Value>(for future: EventLoopFuture<Value>, then decide: @escaping (Result<Value, Error>) -> FilterVerdict) -> FilterVerdict {
        let resumption = loop.eventLoop.makePromise(of: FilterResumption.self)
        future.assumeIsolated().whenComplete { result in
            resumption.assumeIsolated().succeed { decide(result) }
        }
        return .suspend(resumption.futureResult)
    }

    // MARK: 3. Upstream

    /// Picks a server (again after a `picked` hook waited), then sends the request to it; with
    /// nothing to pick, the failure is answered like any other.
    func forwardUpstream() {
        runtime.router.pick(&decision, state: generation.routingState, balancer: &generation.balancer)
        for position in 0..<chain.count {
            switch chain.picked(at: position, self) {
            case .next: continue
            case .respond(let response): return respond(response)
            case .serve(let answer): return serve(answer)
            case .suspend(let wait): return suspend(wait) { _ in self.forwardUpstream() }
            }
        }
        guard let poolIndex = decision.pool, let serverIndex = decision.server else {
            return fail(decision.noWritePool ? .noPrimary : .noServer)
        }
        target(pool: poolIndex, server: serverIndex)
        // Without a wait, the request phase took microseconds: its start is the time (a clock
        // read less per request).
        let now = hasWaited ? NIODeadline.now() : startedAt
        generation.retryBudget.recordRequest(now: Int64(now.uptimeNanoseconds))
        sendToUpstream(now: now)
    }

    // MARK: Answers without the upstream

    /// Answers with a response the gateway makes (a filter's, or an error).
    func respond(_ response: LocalResponse) {
        if let kind = response.errorKind { runtime.metrics.countError(kind) }
        source = .gateway
        status = response.status
        responseBodyBytes = response.body.readableBytes
        downstream.sendHead(.local(response), for: self)
        finish(.completed)
    }

    /// Answers from the cache.
    func serve(_ answer: CachedAnswer) {
        source = .cache
        status = answer.status
        responseBodyBytes = head.method == .head ? 0 : answer.body?.readableBytes ?? 0
        downstream.sendHead(.cached(answer), for: self)
        finish(.completed)
    }

    // MARK: 5. End

    /// The exchange is over: the filters' `end` hooks, the attempt's outcome, the one log line;
    /// then the downstream goes on (next request, close, linger).
    func finish(_ end: ExchangeEnd, outcome: ExchangeOutcome = .neutral, now: NIODeadline = .now()) {
        guard !ended else { return }
        ended = true
        chain.end(self)
        endAttempt(outcome, now: now)
        ExchangeLog.record(self, now: now)
        downstream.exchangeEnded(self, end)
    }

    /// The attempt on `server` is over: no longer in flight, and what it says about the server
    /// (passive outlier detection).
    func endAttempt(_ outcome: ExchangeOutcome, now: NIODeadline = .now()) {
        guard attemptInFlight, let server else { return }
        attemptInFlight = false
        generation.balancer.inFlight[server.id] -= 1
        if outcome != .neutral {
            if let news = generation.recordOutcome(server: server.id, failed: outcome != .success, connectFailure: outcome == .connectFailure,
                                                   now: now) {
                loop.shareOutlier(news, of: generation.runtime)
            }
        }
    }

    // MARK: The client side gives up

    /// The client left, stopped reading, or the gateway shuts down: the exchange ends without
    /// its response (logged with `status`, e.g. nginx's 499 "client closed request").
    func abandon(status: Int, errorKind: String) {
        guard !ended else { return }
        // A tunnel's client leaving (or being cut at shutdown) is how tunnels end: logged as the 101 it was.
        if machine.tunnelling { return endTunnel(.abandoned) }
        releaseUpstream()
        runtime.metrics.countError(errorKind)
        self.status = status
        finish(.abandoned)
    }

    /// The client's body broke a limit (`RequestAdmission`).
    func requestBodyFailed(_ refusal: RequestAdmission.Refusal) {
        requestBodyFailed(status: refusal.status, message: refusal.message, errorKind: refusal.errorKind)
    }

    /// The client failed in the middle of its request body (too large, malformed, gone, slow).
    func requestBodyFailed(status: Int, message: String, errorKind: String) {
        guard !ended else { return }
        releaseUpstream()
        endAttempt(.neutral)
        if machine.responseStarted {
            runtime.metrics.countError(errorKind)
            self.status = machine.status
            finish(.aborted)
        } else {
            respond(LocalResponse.error(status, message, requestID: requestID, errorKind: errorKind, forceClose: true))
        }
    }

    /// A deadline the downstream kept for this exchange passed.
    func deadlineExpired(_ wait: ExchangeStateMachine.Wait) {
        switch wait {
        case .upstreamConnection: fail(.queueTimeout)
        // No response in time, or (while the body is being sent) the upstream stopped taking it.
        case .upstreamResponse: fail(.responseTimeout)
        case .requestBody: requestBodyFailed(status: 408, message: "timed out reading the request body", errorKind: "client_timeout")
        case .tunnel: endTunnel(.aborted)
        }
    }
}
