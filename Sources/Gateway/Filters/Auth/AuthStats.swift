import JWT

/// What one event loop's auth filter saw; summed when `/metrics` is scraped. Counters survive
/// reloads (they are per loop, not per configuration).
struct AuthStats: Sendable {
    /// Signature checks by outcome: index 0 is `ok`, then `TokenError.allCases` in order.
    var verifications = [UInt64](repeating: 0, count: 1 + TokenError.allCases.count)
    /// Requests whose token was found in the loop's cache of verified tokens.
    var cacheHits: UInt64 = 0
    /// Requests of `auth: required` routes without a token, and refused (401) in all.
    var missing: UInt64 = 0
    var refused: UInt64 = 0
    /// Requests of `auth: optional` routes served anonymously (no token, or an invalid one).
    var anonymous: UInt64 = 0

    mutating func count(_ result: Result<VerifiedToken, TokenError>) {
        switch result {
        case .success: verifications[0] &+= 1
        case .failure(let error): verifications[1 + TokenError.allCases.firstIndex(of: error)!] &+= 1
        }
    }

    static func + (lhs: AuthStats, rhs: AuthStats) -> AuthStats {
        var sum = lhs
        for index in sum.verifications.indices { sum.verifications[index] &+= rhs.verifications[index] }
        sum.cacheHits &+= rhs.cacheHits
        sum.missing &+= rhs.missing
        sum.refused &+= rhs.refused
        sum.anonymous &+= rhs.anonymous
        return sum
    }

    static func render(_ stats: AuthStats, jwks: [JWKSSource], cachedTokens: Int) -> String {
        var text = """
            # TYPE gateway_auth_verifications_total counter

            """
        for (index, result) in (["ok"] + TokenError.allCases.map(\.rawValue)).enumerated() {
            text += "gateway_auth_verifications_total{result=\"\(result)\"} \(stats.verifications[index])\n"
        }
        text += """
            # TYPE gateway_auth_token_cache_hits_total counter
            gateway_auth_token_cache_hits_total \(stats.cacheHits)
            # TYPE gateway_auth_token_cache_entries gauge
            gateway_auth_token_cache_entries \(cachedTokens)
            # TYPE gateway_auth_requests_total counter
            gateway_auth_requests_total{result="refused"} \(stats.refused)
            gateway_auth_requests_total{result="missing_token"} \(stats.missing)
            gateway_auth_requests_total{result="anonymous"} \(stats.anonymous)
            # TYPE gateway_auth_jwks_refreshes_total counter

            """
        for source in jwks {
            let (refreshes, failures) = source.counts
            text += "gateway_auth_jwks_refreshes_total{issuer=\"\(source.issuer)\",result=\"ok\"} \(refreshes)\n"
            text += "gateway_auth_jwks_refreshes_total{issuer=\"\(source.issuer)\",result=\"error\"} \(failures)\n"
        }
        text += "# TYPE gateway_auth_jwks_keys gauge\n"
        for source in jwks {
            text += "gateway_auth_jwks_keys{issuer=\"\(source.issuer)\"} \(source.keys.count)\n"
        }
        return text
    }
}
