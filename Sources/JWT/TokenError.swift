/// Why a token was refused. `rawValue` is the label of `gateway_auth_verifications_total{result}`
/// and the `error_description` prefix of the 401.
public enum TokenError: String, Error, Sendable, CaseIterable, CustomStringConvertible {
    /// Not three base64url parts of JSON objects.
    case malformed
    /// `alg` is `none`, unknown, or not allowed for the issuer.
    case disallowedAlgorithm = "disallowed_alg"
    /// No key of the issuer has the token's `kid` (or none fits its algorithm).
    case unknownKey = "unknown_kid"
    case badSignature = "bad_signature"
    case expired
    case notYetValid = "not_yet_valid"
    /// `iss` names no configured issuer (or not this one).
    case wrongIssuer = "wrong_issuer"
    case wrongAudience = "wrong_audience"
    /// A required claim (exp, or the identity's) is missing.
    case missingClaim = "missing_claim"
    /// The issuer's keys are not loaded yet (its JWKS was never fetched).
    case noKeys = "no_keys"

    public var description: String {
        switch self {
        case .malformed: "the token is malformed"
        case .disallowedAlgorithm: "the token's algorithm is not allowed"
        case .unknownKey: "no key matches the token's kid"
        case .badSignature: "the signature does not verify"
        case .expired: "the token has expired"
        case .notYetValid: "the token is not valid yet"
        case .wrongIssuer: "the token's issuer is not accepted"
        case .wrongAudience: "the token is not meant for this audience"
        case .missingClaim: "the token lacks a required claim"
        case .noKeys: "the issuer's keys are not available"
        }
    }
}
