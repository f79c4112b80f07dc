import Testing

@testable import JWT

/// The verifier against tokens PyJWT signed (Fixtures.swift): every algorithm the gateway
/// accepts, and each way a token must be refused. The clock is a parameter, so time is exact.
@Suite struct JWTVerifierTests {
    /// Inside every fixture token's validity (nbf 1e9, exp 2e9).
    let now: Int64 = 1_500_000_000
    let keySet = try! JWKSet(json: Array(Fixtures.jwks.utf8))

    func verify(_ token: String, keys: [VerificationKey], algorithms: Set<JWTAlgorithm>, issuer: String? = "https://issuer.test",
                audiences: [String] = ["api"], leeway: Int64 = 0, now: Int64? = nil) -> Result<Int64?, TokenError> {
        let parsed: JSONWebToken
        do { parsed = try JSONWebToken(token) } catch { return .failure(error) }
        return TokenVerifier(issuer: issuer, audiences: audiences, algorithms: algorithms, leeway: leeway)
            .verify(parsed, keys: keys, now: now ?? self.now)
    }

    var secret: [VerificationKey] { [VerificationKey(secret: Array(Fixtures.secret.utf8))] }
    static let publicKeyAlgorithms = Set(JWTAlgorithm.allCases.filter { !$0.isHMAC })

    @Test func sharedSecretTokensVerify() throws {
        #expect(try verify(Fixtures.hs256, keys: secret, algorithms: [.hs256]).get() == 2_000_000_000)
        #expect(try verify(Fixtures.hs512, keys: secret, algorithms: [.hs512]).get() == 2_000_000_000)
        // The algorithm must be one the issuer allows.
        #expect(verify(Fixtures.hs512, keys: secret, algorithms: [.hs256]) == .failure(.disallowedAlgorithm))
        #expect(verify(Fixtures.hs256OtherSecret, keys: secret, algorithms: [.hs256]) == .failure(.badSignature))
        let claims = try JSONWebToken(Fixtures.hs256).claims
        #expect(claims["sub"] == .string("alice") && claims["user_id"]?.text == "42" && claims["aud"]?.text == "api,other")
    }

    @Test func everyPublicKeyAlgorithmVerifiesThroughAKeySet() throws {
        #expect(keySet.keys.map(\.id) == ["rsa-1", "ec-1", "ec-384", "ed-1"])
        // The encryption key, the symmetric key and the 1024-bit RSA key are skipped, each with a reason.
        #expect(keySet.skipped.count == 3)
        #expect(keySet.skipped.contains { $0.contains("short-1") && $0.contains("2048") })
        for token in [Fixtures.rs256, Fixtures.ps256, Fixtures.es256, Fixtures.es384, Fixtures.edDSA] {
            #expect(try verify(token, keys: keySet.keys, algorithms: Self.publicKeyAlgorithms).get() == 2_000_000_000)
        }
        // Without a kid, every key that fits the algorithm is tried.
        #expect(throws: Never.self) { try verify(Fixtures.rs256NoKid, keys: keySet.keys, algorithms: Self.publicKeyAlgorithms).get() }
    }

    @Test func keysComeFromPEMToo() throws {
        let rsa = try VerificationKey.pem(Fixtures.rsaPublicPEM)
        let ec = try VerificationKey.pem(Fixtures.ecPublicPEM)
        #expect(rsa.kind == .rsa && ec.kind == .ec(curve: "prime256v1"))
        // A configured key has no kid: it verifies tokens that name any.
        #expect(throws: Never.self) { try verify(Fixtures.rs256, keys: [rsa], algorithms: [.rs256]).get() }
        #expect(throws: Never.self) { try verify(Fixtures.es256, keys: [ec], algorithms: [.es256]).get() }
        #expect(throws: VerificationKey.Failure.self) { try VerificationKey.pem(Fixtures.rsaShortPublicPEM) }
        #expect(throws: VerificationKey.Failure.self) { try VerificationKey.pem("not a key") }
    }

    @Test func forgeriesAreRefused() {
        let all = Self.publicKeyAlgorithms
        // alg: none is no algorithm at all.
        #expect(verify(Fixtures.none, keys: keySet.keys, algorithms: all) == .failure(.disallowedAlgorithm))
        #expect(verify(Fixtures.none, keys: secret, algorithms: [.hs256]) == .failure(.disallowedAlgorithm))
        // HS256 signed with the RSA public key as the secret: refused by the issuer's algorithms...
        #expect(verify(Fixtures.confusion, keys: keySet.keys, algorithms: all) == .failure(.disallowedAlgorithm))
        // ...and even if HS256 were allowed, no public key ever verifies an HMAC.
        #expect(verify(Fixtures.confusion, keys: keySet.keys, algorithms: all.union([.hs256])) == .failure(.unknownKey))
        let pem = try! VerificationKey.pem(Fixtures.rsaPublicPEM)
        #expect(verify(Fixtures.confusion, keys: [pem], algorithms: [.hs256, .rs256]) == .failure(.unknownKey))
        // Signed by another key under a known kid.
        #expect(verify(Fixtures.rs256OtherKey, keys: keySet.keys, algorithms: all) == .failure(.badSignature))
        // A kid the set does not have; a kid whose key is of another curve.
        #expect(verify(Fixtures.rs256UnknownKid, keys: keySet.keys, algorithms: all) == .failure(.unknownKey))
        #expect(verify(Fixtures.es256WrongCurveKid, keys: keySet.keys, algorithms: all) == .failure(.unknownKey))
        #expect(verify(Fixtures.rs256, keys: [], algorithms: all) == .failure(.noKeys))
        // A tampered payload (alice → mallory) keeps a signature that no longer matches.
        let parts = Fixtures.hs256.split(separator: ".")
        let tampered = parts[0] + "." + Base64URLTests.encode(Array(#"{"sub":"mallory","exp":2000000000}"#.utf8)) + "." + parts[2]
        #expect(verify(String(tampered), keys: secret, algorithms: [.hs256], issuer: nil, audiences: []) == .failure(.badSignature))
    }

    @Test func malformedTokensAreRefusedBeforeAnyCheck() {
        for token in ["", "abc", "a.b", "a.b.c.d", "..", "!!!.e30.sig", "e30.e30.", String(Fixtures.hs256.dropLast(20)) + "%%",
                      String(Fixtures.hs256.prefix(40)), String(repeating: "a", count: 20_000)] {
            #expect(verify(token, keys: secret, algorithms: [.hs256]) == .failure(.malformed), "\(token.prefix(30))")
        }
    }

    @Test func timeAndAudienceClaims() {
        let hs: Set<JWTAlgorithm> = [.hs256]
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, now: 1_999_999_999).isSuccess)
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, now: 2_000_000_000) == .failure(.expired))
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, leeway: 30, now: 2_000_000_029).isSuccess)
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, leeway: 30, now: 2_000_000_030) == .failure(.expired))
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, now: 999_999_999) == .failure(.notYetValid))
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, leeway: 5, now: 999_999_999).isSuccess)
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, issuer: "https://elsewhere.test") == .failure(.wrongIssuer))
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, audiences: ["billing"]) == .failure(.wrongAudience))
        #expect(verify(Fixtures.hs256, keys: secret, algorithms: hs, audiences: ["billing", "other"]).isSuccess)
        // A token that never expires is refused unless the issuer allows it.
        #expect(verify(Fixtures.hs256NoExp, keys: secret, algorithms: hs) == .failure(.missingClaim))
    }
}

@Suite struct JSONValueTests {
    @Test func claimsKeepTheirJSONTypes() throws {
        let object = try #require(JSONValue.parseObject(Array(#"{"s":"x","i":1,"big":2000000000,"t":true,"f":false,"d":1.5,"n":null,"a":["p",2],"o":{"k":[true]}}"#.utf8)))
        #expect(object["s"] == .string("x") && object["i"] == .integer(1) && object["big"] == .integer(2_000_000_000))
        // A boolean is not the number 1, nor 1 a boolean.
        #expect(object["t"] == .bool(true) && object["f"] == .bool(false))
        #expect(object["d"] == .number(1.5) && object["n"] == .null)
        #expect(object["a"] == .array([.string("p"), .integer(2)]) && object["a"]?.text == "p,2")
        #expect(object["o"] == .object(["k": .array([.bool(true)])]) && object["o"]?.text == nil)
        #expect(object["t"]?.text == "true" && object["d"]?.text == "1.5")
        #expect(JSONValue.parseObject(Array("[1,2]".utf8)) == nil && JSONValue.parseObject(Array("{".utf8)) == nil)
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}

@Suite struct Base64URLTests {
    static func encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var out = ""
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << UInt32(16 - 8 * $1.offset) }
            for position in 0...chunk.count { out.append(alphabet[Int((value >> UInt32(18 - 6 * position)) & 63)]) }
            index += 3
        }
        return out
    }

    @Test func roundTripsAndRefusesNonCanonicalText() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Array(Self.encode(bytes).utf8)) == bytes)
        }
        #expect(Base64URL.decode(Array("e30=".utf8)) == nil)    // padding
        #expect(Base64URL.decode(Array("a+b/".utf8)) == nil)    // base64, not base64url
        #expect(Base64URL.decode(Array("abcde".utf8)) == nil)   // a length no encoding has
        #expect(Base64URL.decode(Array("e31".utf8)) == nil)     // non-zero leftover bits
    }
}
