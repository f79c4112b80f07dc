import Router

/// What a client must not read behind: until a time (reads pinned to the primary), or a WAL
/// position (reads only from replicas that have replayed it).
public struct ConsistencyToken: Sendable, Equatable {
    public enum Requirement: Sendable, Equatable {
        /// Unix time in milliseconds until which reads go to the primary.
        case primaryUntil(Int64)
        case replayed(LSN)
    }

    public var requirement: Requirement
    /// Unix seconds after which the token means nothing.
    public var expires: Int64

    public init(requirement: Requirement, expires: Int64) {
        self.requirement = requirement
        self.expires = expires
    }

    /// The stricter of two tokens of the same kind (a later time, a later position).
    public func merged(with other: ConsistencyToken?) -> ConsistencyToken {
        guard let other else { return self }
        switch (requirement, other.requirement) {
        case (.primaryUntil(let a), .primaryUntil(let b)):
            return a >= b ? self : other
        case (.replayed(let a), .replayed(let b)):
            return a >= b ? self : other
        case (.primaryUntil, .replayed), (.replayed, .primaryUntil):
            // Mixed kinds only happen when the LSN could not be fetched; pinning is stricter.
            if case .primaryUntil = requirement { return self }
            return other
        }
    }
}

/// Encodes tokens as `1.l.<lsn hex>.<expires>.<mac>` or `1.t.<until ms>.<expires>.<mac>`, the MAC
/// being HMAC-SHA256 under a secret every gateway instance shares (so a token issued by one is
/// honoured by all) and truncated to 128 bits. Anything forged, expired or malformed decodes to
/// nil and is ignored.
public struct ConsistencyTokenCodec: Sendable {
    private let key: [UInt8]

    public init(secret: String) {
        key = Array(secret.utf8)
    }

    public func encode(_ token: ConsistencyToken) -> String {
        let payload: String
        switch token.requirement {
        case .primaryUntil(let until): payload = "1.t.\(until).\(token.expires)"
        case .replayed(let lsn): payload = "1.l.\(String(lsn.value, radix: 16)).\(token.expires)"
        }
        return payload + "." + mac(payload)
    }

    public func decode(_ text: some StringProtocol, now: Int64) -> ConsistencyToken? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "1", text.utf8.count < 200 else { return nil }
        let payload = parts[0..<4].joined(separator: ".")
        guard Digest.constantTimeEqual(Array(parts[4].utf8), Array(mac(payload).utf8)) else { return nil }
        guard let expires = Int64(parts[3]), expires > now else { return nil }
        switch parts[1] {
        case "t":
            guard let until = Int64(parts[2]) else { return nil }
            return ConsistencyToken(requirement: .primaryUntil(until), expires: expires)
        case "l":
            guard let value = UInt64(parts[2], radix: 16) else { return nil }
            return ConsistencyToken(requirement: .replayed(LSN(value)), expires: expires)
        default:
            return nil
        }
    }

    private func mac(_ payload: String) -> String {
        Digest.base64URL(Array(Digest.hmacSHA256(key: key, message: payload.utf8).prefix(16)))
    }
}
