import HTTPWire
import JWT
import Testing

@testable import Gateway

/// Who a request comes from: the first source of the `identity:` chain the request has, hashed.
@Suite struct ClientIdentityTests {
    let identity = ClientIdentity(sources: [.cookie("session"), .header("authorization"), .ip])

    func of(_ fields: String, client: String = "192.0.2.1") throws -> String? {
        identity.identity(of: try HeadWriterTests.parse("GET / HTTP/1.1\r\nHost: a\r\n\(fields)\r\n", .request), client: client, token: nil)
    }

    @Test func theFirstSourceTheRequestHasDecides() throws {
        let bySession = try of("Cookie: theme=dark; session=abc\r\nAuthorization: Bearer t\r\n")
        #expect(bySession == (try of("Cookie: session=abc\r\n", client: "203.0.113.5")))
        let byToken = try of("Authorization: Bearer t\r\n")
        #expect(byToken != nil && byToken != bySession)
        #expect(byToken == (try of("Cookie: session=\r\nAuthorization: Bearer t\r\n")))
        let byAddress = try of("")
        #expect(byAddress != nil && byAddress != byToken)
        #expect(try of("", client: "192.0.2.2") != byAddress)
    }

    @Test func credentialsAreNeverKeptInClear() throws {
        let value = try #require(try of("Authorization: Bearer secret-token\r\n"))
        #expect(!value.contains("secret"))
        #expect(value.count == 32 && value.allSatisfy(\.isHexDigit))
        // The same value from different sources is a different identity.
        let asCookie = ClientIdentity(sources: [.cookie("session")])
        let asHeader = ClientIdentity(sources: [.header("x-key")])
        let head = try HeadWriterTests.parse("GET / HTTP/1.1\r\nHost: a\r\nCookie: session=v\r\nX-Key: v\r\n\r\n", .request)
        #expect(asCookie.identity(of: head, client: "-", token: nil) != asHeader.identity(of: head, client: "-", token: nil))
        #expect(ClientIdentity(sources: [.header("x-none")]).identity(of: head, client: "-", token: nil) == nil)
    }

    @Test func aVerifiedClaimIsTheUserAcrossTokens() throws {
        let identity = ClientIdentity(sources: [.claim("sub"), .header("authorization"), .ip])
        func token(_ claims: [String: JSONValue]) -> VerifiedToken {
            VerifiedToken(issuer: "test", claims: claims, expiresAt: nil, claimsToHeaders: [])
        }
        let first = try HeadWriterTests.parse("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer one\r\n\r\n", .request)
        let refreshed = try HeadWriterTests.parse("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer two\r\n\r\n", .request)
        let alice = identity.identity(of: first, client: "-", token: token(["sub": .string("alice"), "iat": .integer(1)]))
        #expect(alice != nil)
        #expect(alice == identity.identity(of: refreshed, client: "-", token: token(["sub": .string("alice"), "iat": .integer(2)])))
        #expect(alice != identity.identity(of: first, client: "-", token: token(["sub": .string("bob")])))
        // A numeric claim (SimpleJWT's user_id) counts as its text.
        #expect(identity.identity(of: first, client: "-", token: token(["sub": .integer(42)]))
                == identity.identity(of: first, client: "-", token: token(["sub": .string("42")])))
        // Without a verified token (anonymous), the next source decides: the raw header.
        let anonymous = identity.identity(of: first, client: "-", token: nil)
        #expect(anonymous != nil && anonymous != alice)
        #expect(anonymous != identity.identity(of: refreshed, client: "-", token: nil))
    }
}
