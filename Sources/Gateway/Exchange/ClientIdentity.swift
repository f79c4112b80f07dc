import Cache
import HTTPWire

/// Who a request comes from (`identity:`): the first source the request has — a verified JWT's
/// claim, a session cookie, an API key or Authorization header, the client address — hashed, so a credential is
/// never kept or sent to Redis in clear. Used for per-user cache entries and for read-your-writes
/// tokens kept per identity.
struct ClientIdentity: Sendable {
    let sources: [IdentitySource]

    func identity(of head: HTTPHead, client: String, token: VerifiedToken?) -> String? {
        for source in sources {
            var value: String?
            switch source {
            case .claim(let name): value = token?.claim(name)
            case .cookie(let name): value = head.cookie(name)
            case .header(let name): value = head.firstValue(named: name)
            case .ip: value = client
            }
            if let value, !value.isEmpty {
                return Digest.hex(Digest.sha256(Array((source.description + "\u{0}" + value).utf8)).prefix(16))
            }
        }
        return nil
    }
}

extension HTTPHead {
    /// A cookie's value, from every Cookie field of the head.
    func cookie(_ name: String) -> String? {
        for field in fields where field.kind == .other && field.nameLength == 6 {
            guard self.name(of: field).lowercased() == "cookie" else { continue }
            for pair in value(of: field).split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingSpaces() == name { return parts[1].trimmingSpaces() }
            }
        }
        return nil
    }
}
