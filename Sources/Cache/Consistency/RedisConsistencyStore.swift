import NIOCore
import Redis
import Router

/// Tokens per client identity in Redis (`consistency.store: redis`), so a client without
/// cookies keeps read-your-writes whichever gateway instance its next request reaches. One key
/// per identity (`gw:ct:<hashed identity>`, one slot on a cluster), holding the stricter of the
/// tokens recorded for it, expiring with the token.
public enum RedisConsistencyStore {
    public static let keyPrefix = "gw:ct:"

    /// Keeps the stricter token: the later time or position of one kind; a time pin over a
    /// position (as `ConsistencyToken.merged` does). Values are `t:` or `l:` and 16 hex digits,
    /// so strings compare as numbers.
    static let recordScript = RedisScript("""
        local old = redis.call('GET', KEYS[1])
        local new = ARGV[1]
        if old then
          local ok, nk = string.sub(old, 1, 1), string.sub(new, 1, 1)
          if ok == nk and old > new then new = old end
          if ok == 't' and nk == 'l' then new = old end
        end
        local ttl = redis.call('PTTL', KEYS[1])
        local want = tonumber(ARGV[2])
        if ttl > want then want = ttl end
        redis.call('SET', KEYS[1], new, 'PX', want)
        return 1
        """)

    public static var scripts: [RedisScript] { [recordScript] }

    public static func record(_ token: ConsistencyToken, for identity: String, ttlMilliseconds: Int64,
                              client: RedisLoopClient) -> EventLoopFuture<Void> {
        client.evalScript(recordScript, keys: [.string(keyPrefix + identity)],
                          arguments: [.string(encoded(token.requirement)), .int(max(1, ttlMilliseconds))]).map { _ in }
    }

    /// The identity's token (nil: none recorded, or it expired).
    public static func lookup(_ identity: String, now: Int64, client: RedisLoopClient) -> EventLoopFuture<ConsistencyToken?> {
        client.send(RedisCommand(key: "GET", .string(keyPrefix + identity))).map { value in
            value.string.flatMap(decoded).map { ConsistencyToken(requirement: $0, expires: now + 1) }
        }
    }

    static func encoded(_ requirement: ConsistencyToken.Requirement) -> String {
        let (kind, value): (String, UInt64) = switch requirement {
        case .primaryUntil(let until): ("t", UInt64(max(0, until)))
        case .replayed(let lsn): ("l", lsn.value)
        }
        let hex = String(value, radix: 16)
        return kind + ":" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    static func decoded(_ text: String) -> ConsistencyToken.Requirement? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let value = UInt64(parts[1], radix: 16) else { return nil }
        switch parts[0] {
        case "t": return .primaryUntil(Int64(clamping: value))
        case "l": return .replayed(LSN(value))
        default: return nil
        }
    }
}
