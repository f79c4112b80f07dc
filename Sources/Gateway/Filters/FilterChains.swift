import Cache
import Router

/// Every route's filter chain, compiled once from the configuration. The order is the order
/// their hooks run in (see `Exchange+Phases.swift`):
///
///     CORS → auth → rate limit → read-your-writes → response cache → response headers
///
/// CORS answers preflights before anything is spent on them (a preflight carries no token);
/// auth refuses a forged or expired token before it spends a budget, and makes the verified
/// user the identity the limits, tokens and cache entries after it key by; limits come before the cache, so
/// cached answers count too (as nginx's `limit_req`); read-your-writes turns the client's
/// token into the requirement the cache's lookup and the router's pick both honour. A route
/// gets only the filters it is configured with.
final class FilterChains: Sendable {
    private let byRoute: [FilterChain]
    /// Requests that match no route.
    private let unmatched: FilterChain

    init(config: GatewayConfig, router: Router, auth: AuthRuntime?, rateLimits: RateLimitRuntime?, cache: CacheRuntime?,
         consistency: ConsistencyRuntime) {
        let cors = router.corsPolicies.map(CORSFilter.init(policy:))
        let limits = rateLimits.map { limits in
            limits.policies.indices.map { position in
                RateLimitFilter(policy: limits.policies[position], limits: limits, byClaim: limits.claimVariants[position])
            }
        } ?? []
        let authFilters = auth.map { auth in (required: AuthFilter(required: true, auth: auth), optional: AuthFilter(required: false, auth: auth)) }
        let readYourWrites = consistency.enabled ? ReadYourWritesFilter(consistency: consistency) : nil

        func chain(route: Int?) -> FilterChain {
            var filters: [Filter] = []
            let corsPolicy = route.flatMap { router.routes[$0].cors }
            if let corsPolicy { filters.append(.cors(cors[corsPolicy])) }
            if let auth, let authFilters {
                switch auth.mode(forRoute: route) {
                case .required: filters.append(.auth(authFilters.required))
                case .optional: filters.append(.auth(authFilters.optional))
                case .none: break
                }
            }
            if let policy = rateLimits?.policy(forRoute: route) { filters.append(.rateLimit(limits[policy])) }
            if let readYourWrites { filters.append(.readYourWrites(readYourWrites)) }
            if let cache {
                filters.append(.responseCache(ResponseCacheFilter(
                    cache: cache, policy: route.flatMap { cache.policies[$0] }, routeHasCORS: corsPolicy != nil)))
            }
            if let route, !config.routes[route].responseHeaders.isEmpty {
                filters.append(.responseHeaders(ResponseHeadersFilter(headers: config.routes[route].responseHeaders)))
            }
            return FilterChain(filters: filters)
        }
        byRoute = config.routes.indices.map { chain(route: $0) }
        unmatched = chain(route: nil)
    }

    func chain(forRoute route: Int?) -> FilterChain {
        guard let route else { return unmatched }
        return byRoute[route]
    }
}
