/// Passive outlier detection (Envoy's `consecutive_5xx`): servers that fail requests in a row
/// are ejected for `baseEjection × times ejected` (capped), but never more than a share of a
/// pool at once, so a bad deploy cannot eject a whole pool and turn errors into an outage.
///
/// Time is passed in (nanoseconds on any monotonic clock), so tests need no waiting.
public struct OutlierDetector: Sendable {
    public struct Settings: Sendable, Equatable {
        public var consecutiveErrors: Int
        public var baseEjectionNanoseconds: Int64
        public var maxEjectionNanoseconds: Int64
        public var maxEjectedPercent: Int

        public init(consecutiveErrors: Int, baseEjectionNanoseconds: Int64, maxEjectionNanoseconds: Int64, maxEjectedPercent: Int) {
            self.consecutiveErrors = consecutiveErrors
            self.baseEjectionNanoseconds = baseEjectionNanoseconds
            self.maxEjectionNanoseconds = maxEjectionNanoseconds
            self.maxEjectedPercent = maxEjectedPercent
        }
    }

    public let settings: Settings
    /// Pool of each server, and the servers of each pool.
    private let poolOfServer: [Int]
    private let serversOfPool: [[Int]]

    public private(set) var consecutiveFailures: [Int]
    /// When each ejected server comes back; nil when not ejected.
    public private(set) var ejectedUntil: [Int64?]
    public private(set) var timesEjected: [Int]
    /// When the last ejection ended; a server well-behaved for a whole max ejection time gets
    /// its multiplier back to zero.
    private var lastReturn: [Int64]
    /// Connection-level backoff (nginx's max_fails=1/fail_timeout): a refused or timed-out
    /// connect is certain and costs nothing to act on, so the server is skipped for a while —
    /// 1 s, doubling with each further connect failure, up to 10 s — whatever the pool's share.
    public private(set) var backedOffUntil: [Int64?]
    private var connectFailures: [Int]
    static let connectBackoffBase: Int64 = 1_000_000_000
    static let connectBackoffMax: Int64 = 10_000_000_000

    public init(settings: Settings, poolOfServer: [Int], serversOfPool: [[Int]]) {
        self.settings = settings
        self.poolOfServer = poolOfServer
        self.serversOfPool = serversOfPool
        let count = poolOfServer.count
        consecutiveFailures = Array(repeating: 0, count: count)
        ejectedUntil = Array(repeating: nil, count: count)
        timesEjected = Array(repeating: 0, count: count)
        lastReturn = Array(repeating: 0, count: count)
        backedOffUntil = Array(repeating: nil, count: count)
        connectFailures = Array(repeating: 0, count: count)
    }

    public func isEjected(_ server: Int) -> Bool { ejectedUntil[server] != nil }

    /// Skipped now: ejected, or backing off after a failed connect.
    public func isUnavailable(_ server: Int) -> Bool { ejectedUntil[server] != nil || backedOffUntil[server] != nil }

    public mutating func recordSuccess(_ server: Int) {
        consecutiveFailures[server] = 0
        connectFailures[server] = 0
    }

    /// A connect was refused or timed out: back off from the server. Also counts towards
    /// ejection like any failure.
    public mutating func recordConnectFailure(_ server: Int, now: Int64, streak: Int? = nil) -> Bool {
        connectFailures[server] += 1
        let backoff = min(Self.connectBackoffBase << min(connectFailures[server] - 1, 4), Self.connectBackoffMax)
        backedOffUntil[server] = now + backoff
        return recordFailure(server, now: now, streak: streak)
    }

    /// Returns true when this failure ejected the server.
    /// - Parameter streak: the server's failures in a row counted across every event loop (with
    ///   this one); nil counts on this detector alone.
    public mutating func recordFailure(_ server: Int, now: Int64, streak: Int? = nil) -> Bool {
        guard settings.consecutiveErrors > 0, ejectedUntil[server] == nil else { return false }
        consecutiveFailures[server] += 1
        guard (streak ?? consecutiveFailures[server]) >= settings.consecutiveErrors else { return false }
        let pool = serversOfPool[poolOfServer[server]]
        let ejected = pool.filter { ejectedUntil[$0] != nil }.count
        // At least one server may always be ejected from a pool of two or more.
        let allowed = max(pool.count > 1 ? 1 : 0, pool.count * settings.maxEjectedPercent / 100)
        guard ejected < allowed else { return false }
        if timesEjected[server] > 0, now - lastReturn[server] > settings.maxEjectionNanoseconds {
            timesEjected[server] = 0
        }
        timesEjected[server] += 1
        let duration = min(settings.baseEjectionNanoseconds * Int64(timesEjected[server]), settings.maxEjectionNanoseconds)
        ejectedUntil[server] = now + duration
        consecutiveFailures[server] = 0
        return true
    }

    /// A configuration reload kept `server` (as `oldServer` of `old`): its streak, ejection and
    /// backoff go on as if nothing had changed.
    public mutating func carry(_ server: Int, from old: OutlierDetector, oldServer: Int) {
        consecutiveFailures[server] = old.consecutiveFailures[oldServer]
        ejectedUntil[server] = old.ejectedUntil[oldServer]
        timesEjected[server] = old.timesEjected[oldServer]
        lastReturn[server] = old.lastReturn[oldServer]
        backedOffUntil[server] = old.backedOffUntil[oldServer]
        connectFailures[server] = old.connectFailures[oldServer]
    }

    /// Another event loop ejected `server` or backed off from it (each loop keeps its own
    /// detector, lock-free; what one decides reaches the others): this one skips it as long.
    /// An ejection that would put more of the pool out than `max_ejected_percent` allows here is
    /// not taken.
    public mutating func adopt(_ server: Int, ejectedUntil: Int64?, timesEjected: Int, backedOffUntil: Int64?) {
        if let until = backedOffUntil, until > (self.backedOffUntil[server] ?? 0) {
            self.backedOffUntil[server] = until
        }
        guard let until = ejectedUntil, self.ejectedUntil[server] == nil else { return }
        let pool = serversOfPool[poolOfServer[server]]
        let ejected = pool.filter { self.ejectedUntil[$0] != nil }.count
        guard ejected < max(pool.count > 1 ? 1 : 0, pool.count * settings.maxEjectedPercent / 100) else { return }
        self.ejectedUntil[server] = until
        self.timesEjected[server] = max(self.timesEjected[server], timesEjected)
        consecutiveFailures[server] = 0
    }

    /// Ends ejections and backoffs that are over; returns the servers that came back.
    public mutating func expire(now: Int64) -> [Int] {
        var returned: [Int] = []
        for server in ejectedUntil.indices {
            if let until = ejectedUntil[server], until <= now {
                ejectedUntil[server] = nil
                lastReturn[server] = now
                returned.append(server)
            }
            if let until = backedOffUntil[server], until <= now {
                backedOffUntil[server] = nil
                returned.append(server)
            }
        }
        return returned
    }
}
