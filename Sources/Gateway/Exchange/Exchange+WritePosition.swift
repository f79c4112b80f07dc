import HTTPWire
import NIOCore
import Router

/// The WAL position a successful write reached: what its read-your-writes token promises and
/// what its cache invalidations' tombstones compare against. It comes from the API's
/// `consistency.lsn_header` when the response carries one, else from one (coalesced)
/// `pg_current_wal_lsn()` on the pool's database; fetched at most once per exchange, however
/// many filters ask.
extension Exchange {
    func writePosition(_ response: HTTPHead) -> EventLoopFuture<LSN?> {
        if let known = writePositionFuture { return known }
        let eventLoop = loop.eventLoop.assumeIsolated()
        let position: EventLoopFuture<LSN?>
        if let lsn = reportedWritePosition(response) {
            position = eventLoop.makeSucceededFuture(lsn)
        } else if let pool, let database = runtime.poolDatabase[pool.index], let queries = generation.consistencyQueries {
            position = queries.currentLSN(database: database, on: loop.eventLoop)
                .assumeIsolated().map { Optional($0) }.recover { _ in nil }.nonisolated()
        } else {
            position = eventLoop.makeSucceededFuture(nil)
        }
        writePositionFuture = position
        return position
    }

    /// The position the API reported in its response (`consistency.lsn_header`).
    func reportedWritePosition(_ response: HTTPHead) -> LSN? {
        runtime.consistency.settings.lsnHeader.flatMap { response.firstValue(named: $0) }.flatMap { LSN($0) }
    }

    /// Whether the position can be asked of the database (the pool has one, and queries run).
    var canQueryWritePosition: Bool {
        guard let pool else { return false }
        return runtime.poolDatabase[pool.index] != nil && generation.consistencyQueries != nil
    }
}
