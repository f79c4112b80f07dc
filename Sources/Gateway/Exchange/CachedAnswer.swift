import Cache

/// A response served from the cache instead of the upstream: the entry, how it answers
/// (`X-Cache: HIT`, `STALE`), and whether the client's `If-None-Match` turns it into a 304.
struct CachedAnswer: Sendable {
    let entry: CachedResponse
    let label: String
    let notModified: Bool
    /// Unix milliseconds when it is served (for `Age`).
    let now: Int64

    var status: Int { notModified ? 304 : entry.status }
}
