import NIOCore

/// At most one log line per key (an upstream server, say) per interval. A misconfigured pool
/// under load would otherwise log once per request; the metrics still count every event, and the
/// next line that is let through says how many were held back.
struct WarningThrottle {
    let interval: TimeAmount
    private var entries: [Int: (loggedAt: NIODeadline, heldBack: Int)] = [:]

    init(interval: TimeAmount) {
        self.interval = interval
    }

    /// nil: hold this one back. Otherwise log it, with the number held back since the last line.
    mutating func admit(_ key: Int, now: NIODeadline) -> Int? {
        if let entry = entries[key], now - entry.loggedAt < interval {
            entries[key]!.heldBack += 1
            return nil
        }
        let heldBack = entries[key]?.heldBack ?? 0
        entries[key] = (now, 0)
        return heldBack
    }
}
