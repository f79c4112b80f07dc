import Cache
import NIOCore

/// A response served from the cache instead of the upstream: the entry, how it answers
/// (`X-Cache: HIT`, `STALE`), and whether the client's `If-None-Match` turns it into a 304.
struct CachedAnswer: Sendable {
    let entry: CachedResponse
    let label: String
    let notModified: Bool
    /// Unix milliseconds when it is served (for `Age`).
    let now: Int64
    /// What of the body a `Range` request gets.
    var range = ByteRange.whole

    var status: Int {
        if notModified { return 304 }
        switch range {
        case .whole: return entry.status
        case .partial: return 206
        case .unsatisfiable: return 416
        }
    }

    /// The body bytes that go out (all of them, a range, or none).
    var body: ByteBuffer? {
        if notModified { return nil }
        switch range {
        case .whole: return entry.body
        case .partial(let bytes): return entry.body.getSlice(at: entry.body.readerIndex + bytes.lowerBound, length: bytes.count)
        case .unsatisfiable: return nil
        }
    }
}
