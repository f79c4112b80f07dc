/// Every kind of filter, as a closed set: a chain is an array of these, and a hook reaches the
/// concrete filter through `apply`'s one switch, so each hook call is statically dispatched and
/// specialised per filter type (no existential, no witness table, no allocation).
///
/// A new filter is a folder under `Filters/`, one case here and its line in `apply`, and its
/// place in `FilterChains.compile`.
enum Filter: Sendable {
    case cors(CORSFilter)
    case auth(AuthFilter)
    case rateLimit(RateLimitFilter)
    case readYourWrites(ReadYourWritesFilter)
    case responseCache(ResponseCacheFilter)
    case responseHeaders(ResponseHeadersFilter)

    @inline(__always)
    func apply<Hook: FilterHook>(_ hook: inout Hook) {
        switch self {
        case .cors(let filter): hook.run(filter)
        case .auth(let filter): hook.run(filter)
        case .rateLimit(let filter): hook.run(filter)
        case .readYourWrites(let filter): hook.run(filter)
        case .responseCache(let filter): hook.run(filter)
        case .responseHeaders(let filter): hook.run(filter)
        }
    }
}

/// One hook, run on one filter of a chain; `FilterChain` defines one per phase.
protocol FilterHook {
    mutating func run<F: ExchangeFilter>(_ filter: F)
}
