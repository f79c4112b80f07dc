import HTTPWire
import Logging
import NIOCore

/// Responses the gateway makes itself, timeouts, and the record of each exchange.
extension DownstreamHandler: TimedConnection {
    // MARK: Local responses

    func writeLocal(_ response: LocalResponse, head: HTTPHead?, requestID: RequestID) {
        guard state == .open, let context else { return }
        let bytes = response.encode(date: loop.dateCache.current(), requestID: requestID,
                                    headOnly: head?.method == .head, allocator: context.channel.allocator)
        writeToClient(bytes)
        flushClient()
    }

    /// Answers a request that never became an exchange (refused at its head).
    func respondLocally(_ response: LocalResponse, head: HTTPHead?, requestID: RequestID, errorKind: String?, linger: Bool) {
        if let errorKind { runtime.metrics.countError(errorKind) }
        writeLocal(response, head: head, requestID: requestID)
        recordLocal(head: head, status: response.status, requestID: requestID, bytes: response.body.readableBytes)
        if response.close {
            closeAfterResponse(linger: linger)
        } else {
            arm(.keepalive, runtime.timeouts.keepalive)
        }
    }

    /// A request that could not be parsed: 400, 431, 501 or 505, and the connection closes
    /// (after a parse error nothing on it can be trusted to start a message).
    func respondToBadRequest(_ error: HTTPParseError) {
        clientText = peerText
        let requestID = loop.requestIDs.make()
        let kind = error.requestStatus == 431 ? "header_too_large" : "bad_request"
        respondLocally(LocalResponse.error(error.requestStatus, error.description, requestID: requestID, close: true),
                       head: nil, requestID: requestID, errorKind: kind, linger: true)
    }

    // MARK: Timeouts

    func arm(_ kind: DeadlineKind, _ timeout: TimeAmount, now: NIODeadline = .now()) {
        deadlineKind = kind
        deadline = now + timeout
    }

    /// While the client is still sending its body, the client's body timeout applies;
    /// otherwise the upstream's response timeout.
    func armResponseTimeout(now: NIODeadline = .now()) {
        if let exchange, exchange.machine.request == .sendingBody, !exchange.machine.responseStarted {
            arm(.clientBody, runtime.timeouts.clientBody, now: now)
        } else if let exchange {
            arm(.response, exchange.server.responseTimeout, now: now)
        }
    }

    func deadlineExpired(now: NIODeadline) {
        let kind = deadlineKind
        deadline = .distantFuture
        deadlineKind = .none
        switch kind {
        case .none:
            return
        case .keepalive, .linger:
            closeNow()
        case .clientHeader:
            if parser.isIdle {
                closeNow()
            } else {
                let requestID = loop.requestIDs.make()
                // Lingering: the client is still sending, and closing on unread bytes would reset
                // the connection and destroy the 408 before the client reads it.
                respondLocally(LocalResponse.error(408, "timed out reading the request header", requestID: requestID, close: true),
                               head: nil, requestID: requestID, errorKind: "client_timeout", linger: true)
            }
        case .clientBody:
            requestBodyFailed(status: 408, message: "timed out reading the request body", errorKind: "client_timeout")
        case .acquire:
            failExchange(.queueTimeout)
        case .response:
            // No response in time, or (while the body is being sent) the upstream stopped taking it.
            failExchange(.responseTimeout)
        case .send:
            abandonExchange(status: exchange?.machine.status ?? 0, errorKind: "client_send_timeout")
            closeNow()
        }
    }

    // MARK: Access log and metrics

    /// What an exchange says about its server, for passive outlier detection.
    enum Outcome {
        case success
        /// A 5xx answer, or a connection that failed after it was made.
        case failure
        /// The connection could not be made at all.
        case connectFailure
        /// Nothing about the server (the client left, timed out, sent too much).
        case neutral
    }

    /// Called exactly once per exchange, when it ends however it ends.
    func record(_ exchange: Exchange, status: Int, now: NIODeadline = .now(), outcome: Outcome) {
        // Ended before its response was complete: nothing is stored, and any requests waiting
        // for this fetch go upstream themselves.
        if let capture = exchange.capture, !capture.finished { capture.finish(succeeded: false, loop: loop) }
        let nanoseconds = (now - exchange.start).nanoseconds
        loop.requestStats[exchange.pool.index].record(status: status, nanoseconds: nanoseconds)
        loop.balancer.inFlight[exchange.server.id] -= 1
        if outcome != .neutral {
            loop.recordOutcome(server: exchange.server.id, failed: outcome != .success, connectFailure: outcome == .connectFailure, now: now)
        }
        guard let logger = runtime.accessLogger else { return }
        logger.info("request", metadata: [
            "method": .string(exchange.head.method.description),
            "path": .string(exchange.head.target),
            "status": .stringConvertible(status),
            "pool": .string(exchange.pool.name),
            "server": .string(exchange.server.authority),
            "route": .string(exchange.decision.isRead ? "read" : "write"),
            "region": .string(runtime.router.regions.names[exchange.decision.region]),
            "duration_ms": .string(Self.milliseconds(nanoseconds)),
            "bytes_in": .stringConvertible(exchange.requestBodyBytes),
            "bytes_out": .stringConvertible(exchange.responseBodyBytes),
            "client": .string(clientText),
            "request_id": .stringConvertible(exchange.requestID),
            "retries": .stringConvertible(exchange.retries),
            "cache": .string(exchange.cacheRequest?.label ?? "-"),
        ])
    }

    func recordLocal(head: HTTPHead?, status: Int, requestID: RequestID, bytes: Int) {
        loop.requestStats[runtime.pools.count].record(status: status, nanoseconds: 0)
        guard let logger = runtime.accessLogger else { return }
        logger.info("request", metadata: [
            "method": .string(head?.method.description ?? "-"),
            "path": .string(head?.target ?? "-"),
            "status": .stringConvertible(status),
            "pool": "-",
            "server": "-",
            "duration_ms": "0",
            "bytes_in": "0",
            "bytes_out": .stringConvertible(bytes),
            "client": .string(clientText),
            "request_id": .stringConvertible(requestID),
        ])
    }

    static func milliseconds(_ nanoseconds: Int64) -> String {
        let micros = nanoseconds / 1000
        let fraction = micros % 1000
        return "\(micros / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }
}
