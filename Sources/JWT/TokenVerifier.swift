/// What one issuer's tokens must satisfy, and the check itself: algorithm allowed and fitting
/// the key, signature, then time and audience claims. Pure: the keys and the time are given,
/// so tests drive it with a fixed clock.
public struct TokenVerifier: Sendable {
    /// `iss` the tokens must carry; nil: not checked.
    public var issuer: String?
    /// At least one must be in `aud`; empty: not checked.
    public var audiences: [String]
    public var algorithms: Set<JWTAlgorithm>
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    public var leeway: Int64
    /// Tokens without `exp` are refused (a token that never expires cannot be revoked by time).
    public var requiresExpiry: Bool

    public init(issuer: String? = nil, audiences: [String] = [], algorithms: Set<JWTAlgorithm>, leeway: Int64 = 0, requiresExpiry: Bool = true) {
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = algorithms
        self.leeway = leeway
        self.requiresExpiry = requiresExpiry
    }

    /// Verifies `token` with `keys` at `now` (seconds since the epoch). On success, returns when
    /// the token stops being valid (its `exp` plus the leeway; nil: never).
    public func verify(_ token: JSONWebToken, keys: [VerificationKey], now: Int64) -> Result<Int64?, TokenError> {
        guard let algorithm = JWTAlgorithm(rawValue: token.algorithmName), algorithms.contains(algorithm) else {
            return .failure(.disallowedAlgorithm)
        }
        let fitting = keys.filter { $0.accepts(algorithm) }
        let tried: [VerificationKey]
        if let kid = token.keyID {
            // The named key; else keys configured without a name (a PEM file, a secret). A key
            // set's other keys are not tried: rotation is told apart from forgery by the kid.
            let named = fitting.filter { $0.id == kid }
            tried = named.isEmpty ? fitting.filter { $0.id == nil } : named
        } else {
            tried = fitting
        }
        guard !tried.isEmpty else { return .failure(keys.isEmpty ? .noKeys : .unknownKey) }
        let signed = token.signingInput.withUnsafeBytes { input in
            tried.contains { $0.verify(token.signature, of: input, algorithm: algorithm) }
        }
        guard signed else { return .failure(.badSignature) }
        return checkClaims(token.claims, now: now)
    }

    /// The registered claims of an authentic token (RFC 7519 §4.1).
    func checkClaims(_ claims: [String: JSONValue], now: Int64) -> Result<Int64?, TokenError> {
        var expiry: Int64?
        if let exp = claims["exp"] {
            guard let seconds = exp.seconds else { return .failure(.malformed) }
            expiry = Int64(seconds.rounded(.down)) + leeway
            if now >= expiry! { return .failure(.expired) }
        } else if requiresExpiry {
            return .failure(.missingClaim)
        }
        if let nbf = claims["nbf"] {
            guard let seconds = nbf.seconds else { return .failure(.malformed) }
            if Double(now + leeway) < seconds { return .failure(.notYetValid) }
        }
        if let issuer {
            guard case .string(let value)? = claims["iss"], value == issuer else { return .failure(.wrongIssuer) }
        }
        if !audiences.isEmpty {
            let presented: [String] = switch claims["aud"] {
            case .string(let value)?: [value]
            case .array(let values)?: values.compactMap { if case .string(let value) = $0 { value } else { nil } }
            default: []
            }
            guard presented.contains(where: audiences.contains) else { return .failure(.wrongAudience) }
        }
        return .success(expiry)
    }
}
