import Foundation

/// Keys made by openssl and tokens signed by PyJWT (Debian's python3-jwt, under
/// `/usr/bin/python3`), in a temporary directory: the gateway is tested with tokens a real JWT
/// library made, never with ones it made itself.
public struct JWTTools: Sendable {
    public let directory: String

    public enum KeyKind: String, Sendable {
        case rsa = "RSA"
        case ec = "EC"
    }

    /// One token to sign: `relative` claims (exp, nbf, iat) are seconds from now.
    public struct Spec: Sendable {
        public var claims: [String: String]
        public var relative: [String: Int]
        public var algorithm: String
        public var secret: String?
        public var keyName: String?
        public var kid: String?
        /// HS256 "signed" with this file's text as the secret (the algorithm-confusion forgery
        /// PyJWT itself refuses to make).
        public var forgeWithFile: String?

        public init(claims: [String: String], relative: [String: Int] = ["exp": 3600], algorithm: String = "HS256", secret: String? = nil,
                    keyName: String? = nil, kid: String? = nil, forgeWithFile: String? = nil) {
            self.claims = claims
            self.relative = relative
            self.algorithm = algorithm
            self.secret = secret
            self.keyName = keyName
            self.kid = kid
            self.forgeWithFile = forgeWithFile
        }
    }

    public static func make() throws -> JWTTools {
        let directory = NSTemporaryDirectory() + "gateway-jwt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try script.write(toFile: directory + "/jwt_tool.py", atomically: true, encoding: .utf8)
        return JWTTools(directory: directory)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `NAME.pem` (private) and `NAME.pub.pem` (public) in the directory, by openssl.
    public func generateKey(_ name: String, _ kind: KeyKind) async throws {
        let key = "\(directory)/\(name).pem"
        let made = kind == .rsa
            ? try await runProcessCapturing("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key])
            : try await runProcessCapturing("/usr/bin/openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        guard made.status == 0 else { throw TestClientError("openssl genpkey: \(made.errors)") }
        let pub = try await runProcessCapturing("/usr/bin/openssl", ["pkey", "-in", key, "-pubout", "-out", "\(directory)/\(name).pub.pem"])
        guard pub.status == 0 else { throw TestClientError("openssl pkey: \(pub.errors)") }
    }

    public func publicKeyPath(_ name: String) -> String { "\(directory)/\(name).pub.pem" }

    /// A JWK set of the named public keys, each with its kid.
    public func keySet(_ keys: [(name: String, kind: KeyKind, kid: String)]) async throws -> String {
        let spec = keys.map { ["file": publicKeyPath($0.name), "kind": $0.kind.rawValue, "kid": $0.kid] }
        return try await run("jwks", spec)
    }

    /// Tokens signed by PyJWT, one per spec, in one python run.
    public func sign(_ specs: [Spec]) async throws -> [String] {
        let list: [[String: Any]] = specs.map { spec in
            var item: [String: Any] = ["claims": spec.claims, "relative": spec.relative, "alg": spec.algorithm]
            if let secret = spec.secret { item["secret"] = secret }
            if let name = spec.keyName { item["key_file"] = "\(directory)/\(name).pem" }
            if let kid = spec.kid { item["kid"] = kid }
            if let file = spec.forgeWithFile { item["forge_with_file"] = file }
            return item
        }
        let tokens = try await run("sign", list).split(separator: "\n").map(String.init)
        guard tokens.count == specs.count else { throw TestClientError("jwt_tool signed \(tokens.count) of \(specs.count)") }
        return tokens
    }

    public func sign(_ spec: Spec) async throws -> String {
        try await sign([spec])[0]
    }

    /// `count` HS256 tokens for distinct subjects, made in one python run (for load).
    public func manyTokens(_ count: Int, secret: String, lifetime: Int = 3600) async throws -> [String] {
        let tokens = try await run("many", ["count": count, "secret": secret, "lifetime": lifetime]).split(separator: "\n").map(String.init)
        guard tokens.count == count else { throw TestClientError("jwt_tool made \(tokens.count) of \(count)") }
        return tokens
    }

    private func run(_ command: String, _ argument: Any) async throws -> String {
        let file = "\(directory)/arg-\(UUID().uuidString.prefix(8)).json"
        try JSONSerialization.data(withJSONObject: argument).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try await runProcessCapturing("/usr/bin/python3", ["\(directory)/jwt_tool.py", command, file])
        guard result.status == 0 else { throw TestClientError("jwt_tool \(command): \(result.errors)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let script = #"""
    import base64, hashlib, hmac, json, sys, time
    import jwt
    from jwt.algorithms import RSAAlgorithm, ECAlgorithm

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    command, argument = sys.argv[1], json.load(open(sys.argv[2]))
    now = int(time.time())
    if command == "sign":
        for spec in argument:
            claims = dict(spec["claims"])
            for name, offset in spec.get("relative", {}).items():
                claims[name] = now + offset
            headers = {"kid": spec["kid"]} if "kid" in spec else None
            if "forge_with_file" in spec:
                header = {"alg": "HS256", "typ": "JWT"}
                if headers: header.update(headers)
                signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
                secret = open(spec["forge_with_file"], "rb").read()
                print(signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest()))
            elif spec["alg"] == "none":
                print(jwt.encode(claims, None, algorithm="none", headers=headers))
            else:
                key = spec["secret"] if "secret" in spec else open(spec["key_file"]).read()
                print(jwt.encode(claims, key, algorithm=spec["alg"], headers=headers))
    elif command == "jwks":
        keys = []
        for item in argument:
            algorithm = RSAAlgorithm(RSAAlgorithm.SHA256) if item["kind"] == "RSA" else ECAlgorithm(ECAlgorithm.SHA256)
            jwk = json.loads(algorithm.to_jwk(algorithm.prepare_key(open(item["file"]).read())))
            jwk.update({"kid": item["kid"], "use": "sig"})
            keys.append(jwk)
        print(json.dumps({"keys": keys}))
    elif command == "many":
        for index in range(argument["count"]):
            claims = {"sub": "user-%d" % index, "plan": "pro", "iat": now, "exp": now + argument["lifetime"]}
            print(jwt.encode(claims, argument["secret"], algorithm="HS256"))
    """#
}
