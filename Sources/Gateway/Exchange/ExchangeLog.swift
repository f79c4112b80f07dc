import HTTPWire
import Logging
import NIOCore

/// The one record of a request: its per-loop request stats and its access log line, with the
/// same keys whatever answered it (upstream, cache, the gateway itself, or a refusal before it
/// became an exchange). `Exchange.finish` calls it exactly once per exchange.
enum ExchangeLog {
    static func record(_ exchange: Exchange, now: NIODeadline = .now()) {
        guard !exchange.isBackground else { return }
        let runtime = exchange.runtime
        let nanoseconds = (now - exchange.startedAt).nanoseconds
        let fromCache = exchange.source == .cache
        // Per pool (by index), then one slot for requests no pool answered, then one for cache answers.
        let slot = fromCache ? runtime.pools.count + 1 : exchange.pool?.index ?? runtime.pools.count
        exchange.loop.requestStats[slot].record(status: exchange.status, nanoseconds: nanoseconds)
        guard let logger = runtime.accessLogger else { return }
        let decision = exchange.decision
        write(logger, Line(
            method: exchange.head.method.description, path: exchange.head.target, status: exchange.status,
            pool: fromCache ? "cache" : exchange.pool?.name ?? "-", server: fromCache ? "-" : exchange.server?.authority ?? "-",
            route: decision.isRead ? "read" : "write", region: runtime.router.regions.names[decision.region],
            nanoseconds: nanoseconds, bytesIn: exchange.requestBodyBytes, bytesOut: exchange.responseBodyBytes,
            client: exchange.clientText, requestID: exchange.requestID, retries: exchange.machine.retries,
            cache: exchange.filters.cache?.label ?? "-"))
    }

    /// A request refused before it became an exchange (unparsable, too large, a header timeout).
    static func recordRefusal(head: HTTPHead?, status: Int, requestID: RequestID, bytesOut: Int, client: String,
                              start: NIODeadline, loop: LoopContext) {
        let runtime = loop.runtime
        let nanoseconds = (NIODeadline.now() - start).nanoseconds
        loop.requestStats[runtime.pools.count].record(status: status, nanoseconds: nanoseconds)
        guard let logger = runtime.accessLogger else { return }
        write(logger, Line(
            method: head?.method.description ?? "-", path: head?.target ?? "-", status: status, pool: "-", server: "-",
            route: "-", region: "-", nanoseconds: nanoseconds, bytesIn: 0, bytesOut: bytesOut, client: client,
            requestID: requestID, retries: 0, cache: "-"))
    }

    private struct Line {
        var method: String
        var path: String
        var status: Int
        var pool: String
        var server: String
        var route: String
        var region: String
        var nanoseconds: Int64
        var bytesIn: Int
        var bytesOut: Int
        var client: String
        var requestID: RequestID
        var retries: Int
        var cache: String
    }

    private static func write(_ logger: Logger, _ line: Line) {
        logger.info("request", metadata: [
            "method": .string(line.method),
            "path": .string(line.path),
            "status": .stringConvertible(line.status),
            "pool": .string(line.pool),
            "server": .string(line.server),
            "route": .string(line.route),
            "region": .string(line.region),
            "duration_ms": .string(milliseconds(line.nanoseconds)),
            "bytes_in": .stringConvertible(line.bytesIn),
            "bytes_out": .stringConvertible(line.bytesOut),
            "client": .string(line.client),
            "request_id": .stringConvertible(line.requestID),
            "retries": .stringConvertible(line.retries),
            "cache": .string(line.cache),
        ])
    }

    static func milliseconds(_ nanoseconds: Int64) -> String {
        let micros = nanoseconds / 1000
        let fraction = micros % 1000
        return "\(micros / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }
}
