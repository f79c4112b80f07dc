import HTTPWire
import NIOCore

/// The one record of a request: its per-loop request stats and its access log line, with the
/// same keys whatever answered it (upstream, cache, the gateway itself, or a refusal before it
/// became an exchange). `Exchange.finish` calls it exactly once per exchange.
enum ExchangeLog {
    private static let dash = ByteBuffer(string: "-").readableBytesView

    static func record(_ exchange: Exchange, now: NIODeadline = .now()) {
        guard !exchange.isBackground else { return }
        let runtime = exchange.runtime
        let nanoseconds = (now - exchange.startedAt).nanoseconds
        let fromCache = exchange.source == .cache
        let slot = fromCache ? GatewayRuntime.cacheStatsSlot : exchange.pool?.statsSlot ?? GatewayRuntime.unroutedStatsSlot
        exchange.loop.requestStats[slot].record(status: exchange.status, nanoseconds: nanoseconds)
        exchange.loop.countRequest(http2: exchange.peer.http2)
        guard let log = exchange.loop.accessLog else { return }
        let decision = exchange.decision
        log.record(
            method: exchange.head.method.description, path: exchange.head.targetBytes, status: exchange.status,
            pool: fromCache ? "cache" : exchange.pool?.name ?? "-", server: fromCache ? "-" : exchange.server?.authority ?? "-",
            route: decision.isRead ? "read" : "write", region: runtime.router.regions.names[decision.region],
            nanoseconds: nanoseconds, bytesIn: exchange.requestBodyBytes, bytesOut: exchange.responseBodyBytes,
            client: exchange.clientText, requestID: exchange.requestID, retries: exchange.machine.retries,
            cache: exchange.filters.cache?.label ?? "-", tls: exchange.peer.tls?.version ?? "-", http2: exchange.peer.http2,
            trace: exchange.trace)
    }

    /// A request refused before it became an exchange (unparsable, too large, a header timeout).
    static func recordRefusal(head: HTTPHead?, status: Int, requestID: RequestID, bytesOut: Int, client: String, tls: String,
                              http2: Bool, start: NIODeadline, loop: LoopContext) {
        let nanoseconds = (NIODeadline.now() - start).nanoseconds
        loop.requestStats[GatewayRuntime.unroutedStatsSlot].record(status: status, nanoseconds: nanoseconds)
        loop.countRequest(http2: http2)
        loop.accessLog?.record(
            method: head?.method.description ?? "-", path: head?.targetBytes ?? Self.dash, status: status, pool: "-", server: "-",
            route: "-", region: "-", nanoseconds: nanoseconds, bytesIn: 0, bytesOut: bytesOut, client: client,
            requestID: requestID, retries: 0, cache: "-", tls: tls, http2: http2, trace: nil)
    }
}
