import Cache
import HTTPWire
import Router

/// A cached route's GET or HEAD as the cache sees it: its key and variant, and what became of
/// its lookup.
struct CacheRequest {
    let key: String
    /// Whose entry: the caller's hashed identity, or `-` on a shared route.
    let variant: String
    let policy: ResponseCachePolicy
    /// HEAD: a hit is answered, a miss forwarded without being stored (no body to store).
    var lookupOnly: Bool
    /// `Cache-Control: no-cache` from the client: fetch anew (and store what comes back).
    var revalidate: Bool
    /// May wait for another request's fetch of the entry, or lead one. Not for reads that must
    /// see their client's write: another client's fetch may come from a replica behind it.
    var coalesces: Bool
    /// What the read-your-writes token asks of an entry.
    let requirement: Router.ReadRequirement
    /// Set when this request leads the fetch others wait for.
    var coalesceID: String?
    /// An entry past its freshness but within stale_if_error: served if the upstream fails.
    var staleFallback: CachedResponse?
    /// A stale entry with a validator, being revalidated: a 304 refreshes and serves it.
    var revalidating: CachedResponse?
    /// `X-Cache`: HIT, MISS, STALE or BYPASS.
    var label = "MISS"

    /// Whether an entry may answer this request (it reflects the client's own write).
    func accepts(_ entry: CachedResponse) -> Bool {
        switch requirement {
        case .any: true
        case .replayed(let lsn): entry.lsn >= lsn.value
        // Pinned to the primary: no entry is known to postdate the write.
        case .writePool: false
        }
    }
}

/// A request's parts a key template is made from.
struct RequestKeyInputs: CacheKeyInputs {
    let head: HTTPHead
    let path: Substring
    let query: Substring
    let host: String
    let parameters: [Substring]

    init(head: HTTPHead, path: NormalizedPath, parameters: [Substring]) {
        self.head = head
        self.path = path.path
        query = head.query.map { Substring($0) } ?? ""
        host = head.host ?? ""
        self.parameters = parameters
    }

    func pathParameter(_ index: Int) -> Substring? { index < parameters.count ? parameters[index] : nil }
    func header(_ lowercasedName: String) -> String? { head.firstValue(named: lowercasedName) }
}
