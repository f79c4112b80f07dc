import Foundation
import HTTPWire
import JWT

/// `auth:` — JWT verification at the edge: the issuers whose tokens are accepted, where a
/// request's token is read from, and which claims go to the upstream as headers. Routes say
/// whether a token is required (`auth:` per route, `default` here).
public struct AuthConfig: Decodable, Sendable {
    /// Routes without their own `auth:`.
    public var defaultMode = AuthMode.none
    /// Where a token is looked for, in order; the first source a request has is the token.
    public var tokenSources: [TokenSource] = [.bearer]
    /// Clock skew allowed on `exp` and `nbf`.
    public var leeway = ConfigDuration.seconds(0)
    /// Verified tokens remembered per event loop (token → claims, until the token expires).
    public var tokenCache = 10_000
    /// Claim → request header sent upstream. A client's own copy of these headers is always
    /// removed, on every route.
    public var claimsToHeaders: [(claim: String, header: String)] = []
    public var issuers: [IssuerConfig] = []

    enum CodingKeys: String, CodingKey, CaseIterable {
        case leeway, issuers
        case defaultMode = "default"
        case tokenSources = "token_from"
        case tokenCache = "token_cache"
        case claimsToHeaders = "claims_to_headers"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultMode = try c.decode(.defaultMode, default: .none)
        if c.contains(.tokenSources) {
            let texts = try c.decode([String].self, forKey: .tokenSources)
            guard !texts.isEmpty else {
                throw DecodingError.dataCorruptedError(forKey: .tokenSources, in: c, debugDescription: "name at least one source (e.g. [bearer])")
            }
            tokenSources = try texts.map { text in
                guard let source = TokenSource(text) else {
                    throw DecodingError.dataCorruptedError(forKey: .tokenSources, in: c,
                        debugDescription: "each source is bearer, cookie:NAME or header:NAME; got '\(text)'")
                }
                return source
            }
        }
        leeway = try c.decode(.leeway, default: .seconds(0))
        tokenCache = try c.decode(.tokenCache, default: 10_000)
        guard tokenCache >= 0 else { throw DecodingError.dataCorruptedError(forKey: .tokenCache, in: c, debugDescription: "0 or more") }
        if c.contains(.claimsToHeaders) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .claimsToHeaders)
            for key in map.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                let header = try map.decode(String.self, forKey: key)
                guard !header.isEmpty, header.utf8.allSatisfy(ASCII.isTokenChar) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: map, debugDescription: "'\(header)' is not a header name")
                }
                claimsToHeaders.append((key.stringValue, header))
            }
        }
        if c.contains(.issuers) {
            let map = try c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .issuers)
            for key in map.allKeys {
                var issuer = try map.decode(IssuerConfig.self, forKey: key)
                issuer.name = key.stringValue
                issuers.append(issuer)
            }
        }
    }

    /// Reads each issuer's key files (PEM keys, a JWKS file), makes its secret a key and its
    /// `https://` JWKS URL a TLS context; `directory`: what relative paths are relative to.
    /// Returns the warnings (an expired CA file, say).
    mutating func loadKeys(directory: String) throws(ConfigValidationError) -> [ConfigValidationError] {
        var warnings: [ConfigValidationError] = []
        for index in issuers.indices {
            try issuers[index].loadKeys(directory: directory, warnings: &warnings)
        }
        return warnings
    }
}

/// A route's `auth:`.
public enum AuthMode: String, Decodable, Sendable {
    /// A valid token or 401.
    case required
    /// A valid token is the identity; none, or an invalid one, is anonymous.
    case optional
    /// Tokens are not looked at.
    case none
}

/// Where a request's token is: `bearer` (Authorization: Bearer), `cookie:NAME`, `header:NAME`.
public enum TokenSource: Sendable, Equatable, CustomStringConvertible {
    case bearer
    case cookie(String)
    /// Lowercased name; the whole value is the token.
    case header(String)

    init?(_ text: String) {
        if text == "bearer" {
            self = .bearer
            return
        }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { return nil }
        switch parts[0] {
        case "cookie": self = .cookie(parts[1])
        case "header": self = .header(parts[1].lowercased())
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .bearer: "bearer"
        case .cookie(let name): "cookie:\(name)"
        case .header(let name): "header:\(name)"
        }
    }
}

/// `auth.issuers.NAME`: one issuer and how its signatures are verified — exactly one of a
/// shared secret (`hs256_secret`, `hs384_secret`, `hs512_secret`), a JWKS URL, a JWKS file, or
/// PEM public keys.
public struct IssuerConfig: Decodable, Sendable {
    public var name = ""
    /// HS256/384/512 with this secret (its UTF-8 bytes, as Django's SECRET_KEY and Node's
    /// JWT_SECRET are used).
    public var secret: String?
    public var secretAlgorithm = JWTAlgorithm.hs256
    public var jwksURL: JWKSURL?
    public var jwksFile: String?
    public var publicKeyFiles: [String] = []
    /// `iss` tokens must carry; nil: any (the issuer then takes tokens no other issuer claims).
    public var issuer: String?
    public var audiences: [String] = []
    /// nil: what the keys allow (the secret's algorithm; every public-key algorithm for a JWKS).
    public var algorithms: [JWTAlgorithm]?
    /// How often the JWKS is fetched again.
    public var jwksRefresh = ConfigDuration.seconds(600)
    /// A token with an unknown `kid` fetches the JWKS again, at most this often.
    public var jwksMinInterval = ConfigDuration.seconds(30)
    public var jwksTimeout = ConfigDuration.seconds(5)
    /// How an `https://` JWKS URL is verified (default: the system trust store).
    public var tls: UpstreamTLSConfig?
    /// Keys from the configuration itself (the secret, PEM files, the JWKS file), once loaded.
    public internal(set) var staticKeys: [VerificationKey] = []
    /// The client TLS context of an `https://` JWKS URL, once loaded.
    var tlsMaterial: UpstreamTLSMaterial?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case issuer, audiences, algorithms, tls
        case hs256Secret = "hs256_secret"
        case hs384Secret = "hs384_secret"
        case hs512Secret = "hs512_secret"
        case jwksURL = "jwks_url"
        case jwksFile = "jwks_file"
        case publicKeyFile = "public_key_file"
        case jwksRefresh = "jwks_refresh"
        case jwksMinInterval = "jwks_min_interval"
        case jwksTimeout = "jwks_timeout"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var sources: [CodingKeys] = []
        for (key, algorithm) in [(CodingKeys.hs256Secret, JWTAlgorithm.hs256), (.hs384Secret, .hs384), (.hs512Secret, .hs512)] where c.contains(key) {
            let value = try c.decode(String.self, forKey: key)
            guard !value.isEmpty else { throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "the secret is empty") }
            secret = value
            secretAlgorithm = algorithm
            sources.append(key)
        }
        if c.contains(.jwksURL) {
            let text = try c.decode(String.self, forKey: .jwksURL)
            guard let url = JWKSURL(text) else {
                throw DecodingError.dataCorruptedError(forKey: .jwksURL, in: c,
                    debugDescription: "expected an http:// or https:// URL such as https://example.auth0.com/.well-known/jwks.json; got '\(text)'")
            }
            jwksURL = url
            sources.append(.jwksURL)
        }
        jwksFile = try c.decodeIfPresent(String.self, forKey: .jwksFile)
        if jwksFile != nil { sources.append(.jwksFile) }
        if c.contains(.publicKeyFile) {
            if let one = try? c.decode(String.self, forKey: .publicKeyFile) {
                publicKeyFiles = [one]
            } else {
                publicKeyFiles = try c.decode([String].self, forKey: .publicKeyFile)
            }
            sources.append(.publicKeyFile)
        }
        guard sources.count == 1 else {
            throw decoder.invalidValue(sources.isEmpty
                ? "an issuer needs its keys: hs256_secret (or hs384_/hs512_secret), jwks_url, jwks_file or public_key_file"
                : "give one of \(sources.map(\.stringValue).joined(separator: ", ")), not several")
        }
        issuer = try c.decodeIfPresent(String.self, forKey: .issuer)
        if c.contains(.audiences) {
            if let one = try? c.decode(String.self, forKey: .audiences) { audiences = [one] } else { audiences = try c.decode([String].self, forKey: .audiences) }
        }
        if c.contains(.algorithms) {
            let names = try c.decode([String].self, forKey: .algorithms)
            var algorithms: [JWTAlgorithm] = []
            for name in names {
                guard let algorithm = JWTAlgorithm(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(forKey: .algorithms, in: c, debugDescription: name.lowercased() == "none"
                        ? "'none' is never accepted: an unsigned token proves nothing"
                        : "unknown algorithm '\(name)' (\(JWTAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                // An HMAC algorithm with public keys lets anyone sign with the public key as the secret.
                guard algorithm.isHMAC == (secret != nil) else {
                    throw DecodingError.dataCorruptedError(forKey: .algorithms, in: c, debugDescription: algorithm.isHMAC
                        ? "\(name) needs a shared secret; with public keys it would accept tokens signed with the public key as the secret"
                        : "\(name) needs public keys (jwks_url, jwks_file or public_key_file), not a secret")
                }
                algorithms.append(algorithm)
            }
            guard !algorithms.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .algorithms, in: c, debugDescription: "name at least one") }
            self.algorithms = algorithms
        }
        jwksRefresh = try c.decode(.jwksRefresh, default: jwksRefresh)
        jwksMinInterval = try c.decode(.jwksMinInterval, default: jwksMinInterval)
        jwksTimeout = try c.decode(.jwksTimeout, default: jwksTimeout)
        guard jwksRefresh >= .seconds(1), jwksMinInterval >= .seconds(1), jwksTimeout >= .milliseconds(10) else {
            throw decoder.invalidValue("jwks_refresh and jwks_min_interval are at least 1s, jwks_timeout at least 10ms")
        }
        tls = try c.decodeIfPresent(UpstreamTLSConfig.self, forKey: .tls)
        if tls != nil, jwksURL?.secure != true {
            throw DecodingError.dataCorruptedError(forKey: .tls, in: c, debugDescription: "tls: is for an https:// jwks_url")
        }
    }

    /// The algorithms accepted: the configured ones, else the secret's, else every public-key one.
    public var acceptedAlgorithms: Set<JWTAlgorithm> {
        if let algorithms { return Set(algorithms) }
        if secret != nil { return [secretAlgorithm] }
        return Set(JWTAlgorithm.allCases.filter { !$0.isHMAC })
    }

    /// What a reload compares to keep an issuer's fetched keys: everything its fetches depend on.
    var fetchIdentity: String? {
        jwksURL.map { "\($0)|\(tls.map { "\($0)" } ?? "-")|\(jwksTimeout)|\(jwksRefresh)|\(jwksMinInterval)" }
    }

    mutating func loadKeys(directory: String, warnings: inout [ConfigValidationError]) throws(ConfigValidationError) {
        let path: [ConfigPathComponent] = ["auth", "issuers", .key(name)]
        func read(_ file: String, key: String) throws(ConfigValidationError) -> String {
            let full = file.hasPrefix("/") ? file : directory + "/" + file
            guard let text = try? String(contentsOfFile: full, encoding: .utf8) else {
                throw ConfigValidationError(path + [.key(key)], "cannot read \(full)")
            }
            return text
        }
        var keys: [VerificationKey] = []
        if let secret { keys.append(VerificationKey(secret: Array(secret.utf8))) }
        for file in publicKeyFiles {
            do {
                keys.append(try VerificationKey.pem(try read(file, key: "public_key_file")))
            } catch let error as ConfigValidationError {
                throw error
            } catch {
                throw ConfigValidationError(path + ["public_key_file"], "\(file): \(error)")
            }
        }
        if let jwksFile {
            do {
                let set = try JWKSet(json: Array(try read(jwksFile, key: "jwks_file").utf8))
                guard !set.keys.isEmpty else {
                    throw ConfigValidationError(path + ["jwks_file"], "\(jwksFile) has no usable signature key (\(set.skipped.joined(separator: "; ")))")
                }
                keys += set.keys
            } catch let error as ConfigValidationError {
                throw error
            } catch {
                throw ConfigValidationError(path + ["jwks_file"], "\(jwksFile): \(error)")
            }
        }
        if let algorithms = algorithms, !keys.isEmpty {
            for algorithm in algorithms where !keys.contains(where: { $0.accepts(algorithm) }) {
                throw ConfigValidationError(path + ["algorithms"], "\(algorithm) fits none of the issuer's keys (\(keys.map(\.kind.description).joined(separator: ", ")))")
            }
        }
        staticKeys = keys
        if let jwksURL, jwksURL.secure {
            tlsMaterial = try UpstreamTLSMaterial(settings: tls ?? UpstreamTLSConfig(), path: path + ["tls"], directory: directory, warnings: &warnings)
        }
    }
}

/// `jwks_url`: where an issuer publishes its keys.
public struct JWKSURL: Sendable, Equatable, CustomStringConvertible {
    public var authority: UpstreamURL
    public var path: String

    init?(_ text: String) {
        let lowered = text.lowercased()
        let schemeLength = lowered.hasPrefix("https://") ? 8 : lowered.hasPrefix("http://") ? 7 : 0
        guard schemeLength > 0 else { return nil }
        let rest = text.dropFirst(schemeLength)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let authority = UpstreamURL.parse(String(text[..<slash])) else { return nil }
        let path = String(rest[slash...])
        guard !path.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" || $0 == "#" }) else { return nil }
        self.authority = authority
        self.path = path.isEmpty ? "/" : path
    }

    public var secure: Bool { authority.secure }
    public var description: String { "\(authority.secure ? "https" : "http")://\(authority.host):\(authority.port)\(path)" }
}
