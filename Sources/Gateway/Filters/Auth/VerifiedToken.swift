import JWT

/// A token the gateway verified: its claims and what the data path needs of them, made once
/// per token (the per-loop cache hands the same one to every request that presents it).
final class VerifiedToken {
    let issuer: String
    let claims: [String: JSONValue]
    /// Seconds since the epoch after which it is no longer valid (exp + leeway; max: no exp).
    let expiresAt: Int64
    /// `claims_to_headers`, as sent upstream; a claim that is missing, not a scalar or not a
    /// valid field value is not sent.
    let claimHeaders: [(String, String)]

    /// The fetched key set it was verified with, and that set's version then: a cached token
    /// whose set changed since is verified again.
    let keySet: JWKSSource?
    let keyVersion: UInt64

    init(issuer: String, claims: [String: JSONValue], expiresAt: Int64?, claimsToHeaders: [(claim: String, header: String)],
         keySet: JWKSSource? = nil, keyVersion: UInt64 = 0) {
        self.issuer = issuer
        self.keySet = keySet
        self.keyVersion = keyVersion
        self.claims = claims
        self.expiresAt = expiresAt ?? .max
        claimHeaders = claimsToHeaders.compactMap { claim, header in
            guard let value = claims[claim]?.text, !value.isEmpty, value.utf8.count <= 4096,
                  value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else { return nil }
            return (header, value)
        }
    }

    /// A claim as text (strings as they are, numbers as JSON writes them).
    func claim(_ name: String) -> String? {
        claims[name]?.text
    }
}
