import Foundation

/// A JSON Web Key Set (RFC 7517 §5), as Auth0, Cognito and Supabase publish theirs: the
/// signature keys it holds. Keys the gateway cannot use (encryption keys, symmetric keys,
/// unknown types) are skipped, not fatal: a provider may add kinds a verifier does not know.
public struct JWKSet: Sendable {
    public let keys: [VerificationKey]
    /// Why each skipped key was skipped (for the log).
    public let skipped: [String]

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private struct Document: Decodable {
        var keys: [JWK]
    }

    private struct JWK: Decodable {
        var kty: String?
        var kid: String?
        var use: String?
        var alg: String?
        var n: String?
        var e: String?
        var crv: String?
        var x: String?
        var y: String?
    }

    public init(keys: [VerificationKey]) {
        self.keys = keys
        skipped = []
    }

    public init(json: [UInt8]) throws(Failure) {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(json))
        } catch {
            throw Failure(description: "not a JWK set: \(error)")
        }
        var keys: [VerificationKey] = []
        var skipped: [String] = []
        for (position, jwk) in document.keys.enumerated() {
            let name = jwk.kid.map { "kid \($0)" } ?? "key \(position)"
            do {
                if let key = try Self.key(jwk) { keys.append(key) } else { skipped.append("\(name): not a signature key the gateway uses") }
            } catch {
                skipped.append("\(name): \(error)")
            }
        }
        self.keys = keys
        self.skipped = skipped
    }

    private static func key(_ jwk: JWK) throws -> VerificationKey? {
        if let use = jwk.use, use != "sig" { return nil }
        var algorithm: JWTAlgorithm?
        if let alg = jwk.alg {
            guard let known = JWTAlgorithm(rawValue: alg) else { return nil }
            algorithm = known
        }
        func bytes(_ field: String?, _ name: String) throws -> [UInt8] {
            guard let field, let value = Base64URL.decode(field.utf8) else { throw Failure(description: "\(name) missing or not base64url") }
            return value
        }
        switch jwk.kty {
        case "RSA":
            return try VerificationKey.rsa(modulus: bytes(jwk.n, "n"), exponent: bytes(jwk.e, "e"), id: jwk.kid, algorithm: algorithm)
        case "EC":
            return try VerificationKey.ec(curve: jwk.crv ?? "", x: bytes(jwk.x, "x"), y: bytes(jwk.y, "y"), id: jwk.kid, algorithm: algorithm)
        case "OKP" where jwk.crv == "Ed25519":
            return try VerificationKey.ed25519(bytes(jwk.x, "x"), id: jwk.kid, algorithm: algorithm)
        default:
            // Symmetric keys ("oct") are not taken from a key set: secrets are configured as such.
            return nil
        }
    }
}
