/// A PostgreSQL WAL position (`0/16B3748`), as bytes since the start of WAL.
public struct LSN: Sendable, Comparable, Hashable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16),
              high <= UInt32.max, low <= UInt32.max
        else { return nil }
        value = high << 32 | low
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }
}

/// How far a replica is behind: bytes of WAL it has not replayed, and for how long.
public struct ReplicaLag: Sendable, Equatable {
    public let bytes: UInt64
    public let seconds: Double

    public init(bytes: UInt64, seconds: Double) {
        self.bytes = bytes
        self.seconds = seconds
    }
}

/// The primary's WAL positions over time, as the gateway's probes saw them. A replica's time
/// lag is how long ago the primary first moved past the replica's replay position: zero when
/// it has replayed everything, at most a probe interval when the probes merely caught the two
/// at different instants, and growing with the clock when replay is really stuck.
///
/// This avoids `now() - pg_last_xact_replay_timestamp()`, which counts the time since the last
/// *transaction*: on an idle primary a checkpoint's WAL makes the byte lag briefly positive
/// while the last transaction is old, and a caught-up replica would look minutes behind.
public struct WALHistory: Sendable {
    private var samples: [(time: Int64, lsn: LSN)] = []
    private let capacity: Int

    public init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    public var latest: LSN? { samples.last?.lsn }

    /// Records the primary's position at `time` (nanoseconds, any monotonic clock). Positions
    /// only move forward on one primary; after a failover the new primary starts a new history.
    public mutating func record(_ lsn: LSN, at time: Int64) {
        if let last = samples.last, lsn <= last.lsn { return }
        samples.append((time, lsn))
        if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
    }

    public mutating func reset() { samples.removeAll() }

    public func lag(replay: LSN, now: Int64) -> ReplicaLag? {
        guard let latest = samples.last else { return nil }
        guard replay < latest.lsn else { return ReplicaLag(bytes: 0, seconds: 0) }
        // The first sample past the replay position (binary search: positions increase).
        var low = 0, high = samples.count - 1
        while low < high {
            let middle = (low + high) / 2
            if samples[middle].lsn > replay { high = middle } else { low = middle + 1 }
        }
        return ReplicaLag(bytes: latest.lsn.value - replay.value, seconds: max(0, Double(now - samples[low].time) / 1e9))
    }
}

/// Whether a replica is fresh enough to read from, with hysteresis: it goes stale beyond the
/// limits and comes back only below `recoveryRatio` of them, so a replica hovering at the limit
/// does not flap in and out of rotation.
public struct ReplicaFreshness: Sendable, Equatable {
    public enum State: String, Sendable { case fresh, stale, unknown }

    public let maxLagSeconds: Double
    /// nil: no byte limit.
    public let maxLagBytes: UInt64?
    public let recoveryRatio: Double
    public private(set) var state: State = .unknown

    public init(maxLagSeconds: Double, maxLagBytes: UInt64?, recoveryRatio: Double = 0.8) {
        self.maxLagSeconds = maxLagSeconds
        self.maxLagBytes = maxLagBytes
        self.recoveryRatio = recoveryRatio
    }

    /// Returns the new state when it changed.
    public mutating func update(_ lag: ReplicaLag?) -> State? {
        let next: State
        if let lag {
            let over = lag.seconds > maxLagSeconds || (maxLagBytes.map { lag.bytes > $0 } ?? false)
            let under = lag.seconds <= maxLagSeconds * recoveryRatio
                && (maxLagBytes.map { Double(lag.bytes) <= Double($0) * recoveryRatio } ?? true)
            switch state {
            case .fresh: next = over ? .stale : .fresh
            case .stale: next = under ? .fresh : .stale
            case .unknown: next = over ? .stale : .fresh
            }
        } else {
            next = .unknown
        }
        defer { state = next }
        return next == state ? nil : next
    }
}
