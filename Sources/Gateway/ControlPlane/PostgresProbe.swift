import CLibpq
import Router

#if canImport(Glibc)
import Glibc
#endif

/// What one probe of a database saw.
struct DatabaseObservation: Sendable, Equatable {
    var inRecovery: Bool
    /// The primary's current WAL position, or a replica's last replayed one.
    var lsn: LSN?
    /// Seconds since the last replayed transaction (replicas; nil on a primary or when none yet).
    var secondsSinceReplay: Double?
    var replayPaused: Bool
    /// Client connections (every client backend, not only the gateway's APIs') and the
    /// server's `max_connections`, for the "connections over 80%" alarm.
    var connections: Int? = nil
    var maxConnections: Int? = nil
}

struct ProbeError: Error, CustomStringConvertible {
    var description: String
}

/// One probe connection to one PostgreSQL node, driven with libpq's non-blocking API and
/// `poll(2)` against a deadline: a node that stops answering mid-query cannot hold a thread
/// beyond the probe timeout (a blocking `PQexec` would wait for TCP to give up, minutes).
/// Used from a thread-pool thread, one call at a time; the connection is kept between probes
/// and made again after any failure. Connection strings are libpq's, with all their parameters
/// (`sslmode=require`, `application_name`, ...).
final class PostgresProbeConnection: @unchecked Sendable {
    let connectionString: String
    private var connection: OpaquePointer?

    /// Role, WAL position, replay age, pause state and connections in one round trip.
    static let query = """
        SELECT pg_is_in_recovery(),
               (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
               extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
               CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
               current_setting('max_connections')::int
        """

    init(connectionString: String) {
        self.connectionString = connectionString
    }

    deinit {
        if let connection { PQfinish(connection) }
    }

    func close() {
        if let connection { PQfinish(connection) }
        connection = nil
    }

    func probe(timeoutNanoseconds: Int64) throws -> DatabaseObservation {
        let row = try queryRow(Self.query, columns: 6, timeoutNanoseconds: timeoutNanoseconds)
        return DatabaseObservation(
            inRecovery: row[0] == "t", lsn: row[1].flatMap { LSN($0) },
            secondsSinceReplay: row[2].flatMap(Double.init), replayPaused: row[3] == "t",
            connections: row[4].flatMap { Int($0) }, maxConnections: row[5].flatMap { Int($0) })
    }

    /// One WAL position: `pg_current_wal_lsn()` on a primary, `pg_last_wal_replay_lsn()` on a
    /// replica (whichever the query asks).
    func queryLSN(_ sql: String, timeoutNanoseconds: Int64) throws -> LSN {
        guard let text = try queryRow(sql, columns: 1, timeoutNanoseconds: timeoutNanoseconds)[0], let lsn = LSN(text) else {
            throw ProbeError(description: "no WAL position")
        }
        return lsn
    }

    /// The first row of a query's result, as text (nil for NULL), within the timeout.
    func queryRow(_ sql: String, columns: Int32, timeoutNanoseconds: Int64) throws -> [String?] {
        let deadline = Self.now() + timeoutNanoseconds
        do {
            if connection == nil || PQstatus(connection) != CONNECTION_OK {
                close()
                try connect(deadline: deadline)
            }
            return try run(sql, columns: columns, deadline: deadline)
        } catch {
            close()
            throw error
        }
    }

    private func connect(deadline: Int64) throws {
        guard let started = PQconnectStart(connectionString) else { throw ProbeError(description: "out of memory") }
        connection = started
        guard PQstatus(started) != CONNECTION_BAD else { throw ProbeError(description: message(started)) }
        var status = PGRES_POLLING_WRITING
        while true {
            switch status {
            case PGRES_POLLING_OK:
                guard PQsetnonblocking(started, 1) == 0 else { throw ProbeError(description: message(started)) }
                return
            case PGRES_POLLING_FAILED:
                throw ProbeError(description: message(started))
            case PGRES_POLLING_READING:
                try wait(started, events: Int16(POLLIN), deadline: deadline, doing: "connecting")
            default:
                try wait(started, events: Int16(POLLOUT), deadline: deadline, doing: "connecting")
            }
            status = PQconnectPoll(started)
        }
    }

    private func run(_ sql: String, columns: Int32, deadline: Int64) throws -> [String?] {
        guard let connection else { throw ProbeError(description: "not connected") }
        guard PQsendQuery(connection, sql) == 1 else { throw ProbeError(description: message(connection)) }
        while true {
            let flushed = PQflush(connection)
            if flushed == 0 { break }
            if flushed < 0 { throw ProbeError(description: message(connection)) }
            try wait(connection, events: Int16(POLLOUT | POLLIN), deadline: deadline, doing: "sending the query")
            guard PQconsumeInput(connection) == 1 else { throw ProbeError(description: message(connection)) }
        }
        while PQisBusy(connection) == 1 {
            try wait(connection, events: Int16(POLLIN), deadline: deadline, doing: "waiting for the answer")
            guard PQconsumeInput(connection) == 1 else { throw ProbeError(description: message(connection)) }
        }
        var row: [String?]?
        var failure: String?
        while let result = PQgetResult(connection) {
            defer { PQclear(result) }
            if PQresultStatus(result) == PGRES_TUPLES_OK, PQntuples(result) == 1, PQnfields(result) == columns {
                row = (0..<columns).map { column in
                    PQgetisnull(result, 0, column) == 1 ? nil : String(cString: PQgetvalue(result, 0, column))
                }
            } else {
                failure = String(cString: PQresultErrorMessage(result)).trimmed("\n")
            }
        }
        guard let row else { throw ProbeError(description: failure ?? "the query returned nothing") }
        return row
    }

    private func wait(_ connection: OpaquePointer, events: Int16, deadline: Int64, doing: String) throws {
        let remaining = deadline - Self.now()
        guard remaining > 0 else { throw ProbeError(description: "timed out \(doing)") }
        var descriptor = pollfd(fd: PQsocket(connection), events: events, revents: 0)
        guard descriptor.fd >= 0 else { throw ProbeError(description: message(connection)) }
        let ready = poll(&descriptor, 1, Int32(min(remaining / 1_000_000 + 1, Int64(Int32.max))))
        if ready == 0 { throw ProbeError(description: "timed out \(doing)") }
        if ready < 0 && errno != EINTR { throw ProbeError(description: "poll failed (errno \(errno))") }
    }

    private func message(_ connection: OpaquePointer?) -> String {
        guard let connection, let text = PQerrorMessage(connection) else { return "unknown libpq error" }
        let message = String(cString: text).trimmed("\n")
        return message.isEmpty ? "connection failed" : message
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
