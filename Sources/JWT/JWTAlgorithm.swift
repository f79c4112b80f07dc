import COpenSSL

/// The JWS algorithms the gateway verifies (RFC 7518, RFC 8037). `none` is not one of them.
public enum JWTAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384", es512 = "ES512"
    case edDSA = "EdDSA"

    public var description: String { rawValue }

    /// Signed with a shared secret (HMAC), not a key pair.
    public var isHMAC: Bool { self == .hs256 || self == .hs384 || self == .hs512 }

    /// The kind of key that verifies it: an HMAC algorithm never accepts a public key (the
    /// algorithm-confusion attack), an RSA one never an EC key, and so on.
    var keyKind: VerificationKey.Kind {
        switch self {
        case .hs256, .hs384, .hs512: .secret
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512: .rsa
        case .es256: .ec(curve: "prime256v1")
        case .es384: .ec(curve: "secp384r1")
        case .es512: .ec(curve: "secp521r1")
        case .edDSA: .ed25519
        }
    }

    var digest: OpaquePointer? {
        switch self {
        case .hs256, .rs256, .ps256, .es256: gw_sha256()
        case .hs384, .rs384, .ps384, .es384: gw_sha384()
        case .hs512, .rs512, .ps512, .es512: gw_sha512()
        case .edDSA: nil
        }
    }

    var isPSS: Bool { self == .ps256 || self == .ps384 || self == .ps512 }

    /// The byte length of each of r and s in a JWS ECDSA signature (0: not ECDSA).
    var ecdsaCoordinateSize: Int32 {
        switch self {
        case .es256: 32
        case .es384: 48
        case .es512: 66
        default: 0
        }
    }
}
