import NIOConcurrencyHelpers

/// One upstream fetch per cache entry at a time (nginx's `proxy_cache_lock`): the first
/// request to miss (or a background refresh) leads, later ones for the same key and variant
/// wait for its result instead of going upstream too. Shared by all event loops.
public final class CacheCoalescer: Sendable {
    /// A request waiting for a leader. `deliver` is called at most once, from any thread: it
    /// must hop to its own event loop.
    public final class Waiter: Sendable {
        private let done = NIOLockedValueBox(false)
        private let deliver: @Sendable (CachedResponse?) -> Void

        public init(deliver: @escaping @Sendable (CachedResponse?) -> Void) {
            self.deliver = deliver
        }

        /// Returns false when it was already answered (or gave up).
        @discardableResult
        public func finish(_ entry: CachedResponse?) -> Bool {
            let first = done.withLockedValue { done in
                defer { done = true }
                return !done
            }
            if first { deliver(entry) }
            return first
        }
    }

    private let inFlight = NIOLockedValueBox<[String: [Waiter]]>([:])

    public init() {}

    public static func id(key: String, variant: String) -> String { key + "\u{0}" + variant }

    /// Becomes the leader for `id` (returns true), or, with a `waiter`, joins the fetch in
    /// flight (returns false). Without a waiter, only claims a free slot (a refresh that need
    /// not run twice).
    public func lead(_ id: String, orWait waiter: Waiter?) -> Bool {
        inFlight.withLockedValue { inFlight in
            if inFlight[id] != nil {
                if let waiter { inFlight[id]!.append(waiter) }
                return false
            }
            inFlight[id] = []
            return true
        }
    }

    /// The leader is done: its entry (if it was stored) goes to every waiter; nil sends them
    /// upstream on their own.
    public func finish(_ id: String, entry: CachedResponse?) {
        let waiters = inFlight.withLockedValue { $0.removeValue(forKey: id) } ?? []
        for waiter in waiters { waiter.finish(entry) }
    }

    public var inFlightCount: Int { inFlight.withLockedValue { $0.count } }
}
