import Foundation

/// A compact JWS (RFC 7515 §7.1) taken apart but not yet trusted: its header's algorithm and
/// key id, its claims, and what its signature covers. `TokenVerifier` decides whether to trust it.
public struct JSONWebToken: Sendable {
    /// The header's `alg` as written (`none` included: the verifier refuses it).
    public let algorithmName: String
    public let keyID: String?
    public let claims: [String: JSONValue]
    /// `header.payload`, the bytes the signature covers.
    let signingInput: [UInt8]
    let signature: [UInt8]

    /// Longer tokens are refused before any parsing (an upper bound on the work a client can ask for).
    public static let maximumLength = 16 * 1024

    public init(_ token: some StringProtocol) throws(TokenError) {
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maximumLength else { throw .malformed }
        let dots = bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }
        guard dots.count == 2, dots[0] > 0, dots[1] > dots[0] + 1 else { throw .malformed }
        guard let headerJSON = Base64URL.decode(bytes[..<dots[0]]),
              let payloadJSON = Base64URL.decode(bytes[(dots[0] + 1)..<dots[1]]),
              let signature = Base64URL.decode(bytes[(dots[1] + 1)...]) else { throw .malformed }
        guard let header = JSONValue.parseObject(headerJSON), let claims = JSONValue.parseObject(payloadJSON),
              case .string(let algorithm)? = header["alg"] else { throw .malformed }
        // Extensions the verifier must understand (RFC 7515 §4.1.11): it understands none.
        guard header["crit"] == nil else { throw .malformed }
        switch header["kid"] {
        case nil: keyID = nil
        case .string(let kid)?: keyID = kid
        default: throw .malformed
        }
        algorithmName = algorithm
        self.claims = claims
        signingInput = Array(bytes[..<dots[1]])
        self.signature = signature
    }

    /// `iss`, when it is a string.
    public var issuer: String? {
        if case .string(let value)? = claims["iss"] { return value }
        return nil
    }
}
