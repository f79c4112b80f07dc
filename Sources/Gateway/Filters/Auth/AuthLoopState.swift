import JWT

/// What one event loop keeps for auth: its verified tokens (token → claims, until the token
/// expires) and its counters. A keep-alive client presents the same token on every request: it
/// then costs a hash lookup, not a signature check. Only this loop's thread touches it.
struct AuthLoopState {
    var stats = AuthStats()
    private var verified: [String: VerifiedToken] = [:]
    /// The configuration the cached tokens were verified under: a reload may change keys,
    /// issuers or audiences, so its first request on this loop starts the cache afresh.
    private var verifiedUnder: ObjectIdentifier?

    var cachedTokens: Int { verified.count }

    /// The token's claims if it was verified here under `auth`, has not expired since, and its
    /// issuer's key set is the one it was verified with.
    mutating func cached(_ token: String, auth: AuthRuntime, now: Int64) -> VerifiedToken? {
        guard verifiedUnder == ObjectIdentifier(auth) else {
            verified.removeAll()
            verifiedUnder = ObjectIdentifier(auth)
            return nil
        }
        guard let entry = verified[token] else { return nil }
        guard now < entry.expiresAt, entry.keySet.map({ $0.version == entry.keyVersion }) ?? true else {
            verified[token] = nil
            return nil
        }
        return entry
    }

    /// Remembers a verified token. When the table is full, expired tokens go first; if none
    /// has, the table starts over (a bound, not an LRU: a full table means many distinct
    /// tokens, which are verified once each either way).
    mutating func remember(_ token: String, _ entry: VerifiedToken, capacity: Int, now: Int64) {
        guard capacity > 0 else { return }
        if verified.count >= capacity {
            verified = verified.filter { now < $0.value.expiresAt }
            if verified.count >= capacity { verified.removeAll(keepingCapacity: true) }
        }
        verified[token] = entry
    }
}
