import COpenSSL

/// A key that verifies JWT signatures: a shared secret (HS*) or a public key (RSA, EC, Ed25519)
/// held by OpenSSL. Immutable once made, so any thread may verify with it.
public final class VerificationKey: @unchecked Sendable {
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        case secret
        case rsa
        /// OpenSSL's group name: prime256v1, secp384r1, secp521r1.
        case ec(curve: String)
        case ed25519

        public var description: String {
            switch self {
            case .secret: "secret"
            case .rsa: "RSA"
            case .ec(let curve): "EC \(curve)"
            case .ed25519: "Ed25519"
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `kid`: the key a token's header names.
    public let id: String?
    public let kind: Kind
    /// The one algorithm the key's JWK allows (`alg`), if it names one.
    public let algorithm: JWTAlgorithm?
    private let secret: [UInt8]
    private let publicKey: OpaquePointer?

    /// RSA keys shorter than this are refused (RFC 7518 §3.3).
    static let minimumRSABits: Int32 = 2048

    /// A shared secret (HS256/384/512).
    public init(secret: [UInt8], id: String? = nil) {
        self.id = id
        kind = .secret
        algorithm = nil
        self.secret = secret
        publicKey = nil
    }

    private init(publicKey: OpaquePointer, kind: Kind, id: String?, algorithm: JWTAlgorithm?) {
        self.id = id
        self.kind = kind
        self.algorithm = algorithm
        secret = []
        self.publicKey = publicKey
    }

    deinit {
        if let publicKey { EVP_PKEY_free(publicKey) }
    }

    /// A public key from PEM (a "PUBLIC KEY" block or a certificate).
    public static func pem(_ text: String, id: String? = nil) throws(Failure) -> VerificationKey {
        let key = text.withCString { gw_pem_public_key($0, strlen($0)) }
        guard let key else { throw Failure(description: "no PEM public key or certificate") }
        return try adopt(key, id: id, algorithm: nil)
    }

    /// An RSA public key from a JWK's modulus and exponent.
    static func rsa(modulus: [UInt8], exponent: [UInt8], id: String?, algorithm: JWTAlgorithm?) throws(Failure) -> VerificationKey {
        guard let key = gw_rsa_public_key(modulus, modulus.count, exponent, exponent.count) else {
            throw Failure(description: "n and e do not make an RSA key")
        }
        return try adopt(key, id: id, algorithm: algorithm)
    }

    /// An EC public key from a JWK's curve and coordinates.
    static func ec(curve: String, x: [UInt8], y: [UInt8], id: String?, algorithm: JWTAlgorithm?) throws(Failure) -> VerificationKey {
        let (group, size) = switch curve {
        case "P-256": ("prime256v1", 32)
        case "P-384": ("secp384r1", 48)
        case "P-521": ("secp521r1", 66)
        default: throw Failure(description: "unsupported curve \(curve)")
        }
        guard x.count == size, y.count == size else { throw Failure(description: "x and y must be \(size) bytes on \(curve)") }
        let point = [0x04] + x + y
        guard let key = gw_ec_public_key(group, point, point.count) else {
            throw Failure(description: "the point is not on \(curve)")
        }
        return try adopt(key, id: id, algorithm: algorithm)
    }

    /// An Ed25519 public key from a JWK's `x`.
    static func ed25519(_ x: [UInt8], id: String?, algorithm: JWTAlgorithm?) throws(Failure) -> VerificationKey {
        guard x.count == 32, let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, x, x.count) else {
            throw Failure(description: "x is not an Ed25519 public key")
        }
        return try adopt(key, id: id, algorithm: algorithm)
    }

    private static func adopt(_ key: OpaquePointer, id: String?, algorithm: JWTAlgorithm?) throws(Failure) -> VerificationKey {
        let kind: Kind
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA:
            guard EVP_PKEY_get_bits(key) >= minimumRSABits else {
                EVP_PKEY_free(key)
                throw Failure(description: "RSA keys shorter than \(minimumRSABits) bits are refused")
            }
            kind = .rsa
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            guard gw_ec_group_name(key, &name, name.count) == 1 else {
                EVP_PKEY_free(key)
                throw Failure(description: "an EC key without a named curve")
            }
            kind = .ec(curve: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case EVP_PKEY_ED25519:
            kind = .ed25519
        default:
            EVP_PKEY_free(key)
            throw Failure(description: "unsupported key type (RSA, EC P-256/384/521 and Ed25519 are)")
        }
        if let algorithm, algorithm.keyKind != kind {
            EVP_PKEY_free(key)
            throw Failure(description: "alg \(algorithm) does not go with a \(kind) key")
        }
        return VerificationKey(publicKey: key, kind: kind, id: id, algorithm: algorithm)
    }

    /// Whether this key may verify `algorithm`: the key's kind must be the algorithm's, and a
    /// JWK that names its algorithm verifies only that one.
    public func accepts(_ algorithm: JWTAlgorithm) -> Bool {
        algorithm.keyKind == kind && (self.algorithm == nil || self.algorithm == algorithm)
    }

    /// Whether `signature` is this key's signature of `input` under `algorithm`.
    func verify(_ signature: [UInt8], of input: UnsafeRawBufferPointer, algorithm: JWTAlgorithm) -> Bool {
        guard accepts(algorithm) else { return false }
        let data = input.bindMemory(to: UInt8.self)
        if kind == .secret {
            return gw_hmac_verify(algorithm.digest, secret, secret.count, data.baseAddress, data.count, signature, signature.count) == 1
        }
        return gw_verify(publicKey, algorithm.digest, algorithm.isPSS ? 1 : 0, algorithm.ecdsaCoordinateSize,
                         signature, signature.count, data.baseAddress, data.count) == 1
    }
}
