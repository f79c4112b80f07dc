import HTTPWire
import JWT
import Logging

/// Auth as the data path uses it: the issuers with their verifiers and keys, where tokens are
/// read from, each route's mode, and the headers claims become. Built with each configuration;
/// a reload keeps an issuer's fetched key set while its `jwks_url` settings are unchanged.
final class AuthRuntime: Sendable {
    final class Issuer: Sendable {
        let name: String
        let verifier: TokenVerifier
        let staticKeys: [VerificationKey]
        let jwks: JWKSSource?

        init(name: String, verifier: TokenVerifier, staticKeys: [VerificationKey], jwks: JWKSSource?) {
            self.name = name
            self.verifier = verifier
            self.staticKeys = staticKeys
            self.jwks = jwks
        }

        /// The keys to verify with, and the key set's version (0 for configured keys).
        var keys: (keys: [VerificationKey], version: UInt64) { jwks?.snapshot ?? (staticKeys, 0) }
    }

    let issuers: [Issuer]
    let tokenSources: [TokenSource]
    let cacheCapacity: Int
    let claimsToHeaders: [(claim: String, header: String)]
    /// The claim headers' names, lowercased: a client's own copies are removed on every route.
    let reservedHeaders: [[UInt8]]
    /// Per route index, its mode; `defaultMode` for requests that match no route.
    let routeModes: [AuthMode]
    let defaultMode: AuthMode

    /// nil when `auth:` has no issuers.
    init?(config: GatewayConfig, previous: AuthRuntime?, logger: Logger) {
        let auth = config.auth
        guard !auth.issuers.isEmpty else { return nil }
        issuers = auth.issuers.map { issuer in
            let verifier = TokenVerifier(issuer: issuer.issuer, audiences: issuer.audiences, algorithms: issuer.acceptedAlgorithms,
                                         leeway: Int64(auth.leeway.duration.components.seconds))
            var jwks: JWKSSource?
            if let url = issuer.jwksURL, let identity = issuer.fetchIdentity {
                // A reload that leaves the issuer's fetch settings alone keeps its fetched keys.
                let unchanged = previous?.fetchIdentities[issuer.name] == identity
                jwks = (unchanged ? previous?.issuers.first { $0.name == issuer.name }?.jwks : nil)
                    ?? JWKSSource(issuer: issuer, url: url, logger: logger)
            }
            return Issuer(name: issuer.name, verifier: verifier, staticKeys: issuer.staticKeys, jwks: jwks)
        }
        fetchIdentities = Dictionary(uniqueKeysWithValues: auth.issuers.compactMap { issuer in issuer.fetchIdentity.map { (issuer.name, $0) } })
        tokenSources = auth.tokenSources
        cacheCapacity = auth.tokenCache
        claimsToHeaders = auth.claimsToHeaders
        reservedHeaders = auth.claimsToHeaders.map { Array($0.header.lowercased().utf8) }
        routeModes = config.routes.map { $0.auth ?? auth.defaultMode }
        defaultMode = auth.defaultMode
    }

    /// Per issuer with a `jwks_url`, what its key set is fetched with (a reload keeps the set
    /// while this is the same).
    private let fetchIdentities: [String: String]

    var jwksSources: [JWKSSource] { issuers.compactMap(\.jwks) }

    func mode(forRoute route: Int?) -> AuthMode {
        guard let route else { return defaultMode }
        return routeModes[route]
    }

    /// The request's token: the first configured source it has. A native String made from the
    /// header's bytes: it is the key of the loop's verified tokens, and hashing and comparing a
    /// Substring slice costs several times more than an ASCII String.
    func token(in head: HTTPHead) -> String? {
        for source in tokenSources {
            switch source {
            case .bearer:
                if let token = Self.bearerToken(in: head) { return token }
            case .cookie(let name):
                if let value = head.cookie(name), !value.isEmpty { return value }
            case .header(let name):
                if let value = head.firstValue(named: name), !value.isEmpty { return value }
            }
        }
        return nil
    }

    /// `Authorization: Bearer TOKEN` (RFC 6750 §2.1: the scheme in any case, then spaces).
    private static func bearerToken(in head: HTTPHead) -> String? {
        guard let field = head.firstField(.authorization) else { return nil }
        return head.raw.withUnsafeReadableBytes { raw -> String? in
            let value = field.value(in: raw)
            guard value.count > 7, zip(value.prefix(7), "bearer ".utf8).allSatisfy({ ASCII.lowercased($0) == $1 }) else { return nil }
            var start = 7
            while start < value.count, value[start] == UInt8(ascii: " ") { start += 1 }
            guard start < value.count else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: value[start...]), as: UTF8.self)
        }
    }

    /// The issuer a token is checked against: the one whose `issuer:` is its `iss`, else the
    /// first without an `issuer:` (it takes tokens no other issuer claims).
    func issuer(for token: JSONWebToken) -> Issuer? {
        if let iss = token.issuer, let named = issuers.first(where: { $0.verifier.issuer == iss }) { return named }
        return issuers.first { $0.verifier.issuer == nil }
    }

    /// Verifies a token nobody on this loop has presented yet.
    func verify(_ text: String, now: Int64) -> (Result<VerifiedToken, TokenError>, Issuer?) {
        let token: JSONWebToken
        do { token = try JSONWebToken(text) } catch { return (.failure(error), nil) }
        guard let issuer = issuer(for: token) else { return (.failure(.wrongIssuer), nil) }
        let (keys, version) = issuer.keys
        switch issuer.verifier.verify(token, keys: keys, now: now) {
        case .success(let expiry):
            return (.success(VerifiedToken(issuer: issuer.name, claims: token.claims, expiresAt: expiry, claimsToHeaders: claimsToHeaders,
                                           keySet: issuer.jwks, keyVersion: version)), issuer)
        case .failure(let error):
            return (.failure(error), issuer)
        }
    }
}
