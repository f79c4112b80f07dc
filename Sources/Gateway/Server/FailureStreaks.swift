import Synchronization

/// Each server's failures in a row, counted by every event loop together, so passive outlier
/// detection ejects a failing server after `consecutive_errors` failures whichever loops saw
/// them (not `consecutive_errors` on each loop). Lock-free: a success only reads the count (and
/// writes it only when a streak ends), so the common path does not bounce a cache line between
/// cores.
final class FailureStreaks: Sendable {
    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    private let counters: [Counter]

    init(servers: Int) {
        counters = (0..<servers).map { _ in Counter() }
    }

    /// One more failure; returns the streak including it.
    func failed(_ server: Int) -> Int {
        counters[server].value.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// A success (or an ejection) ends the streak.
    func reset(_ server: Int) {
        if counters[server].value.load(ordering: .relaxed) != 0 {
            counters[server].value.store(0, ordering: .relaxed)
        }
    }
}
