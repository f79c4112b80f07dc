import Cache
import HTTPWire
import NIOCore
import Router

#if canImport(Glibc)
import Glibc
#endif

/// Read-your-writes as the data path uses it: the token codec, the per-identity store, and the
/// headers that carry tokens.
final class ConsistencyRuntime: Sendable {
    let settings: ConsistencyConfig
    let codec: ConsistencyTokenCodec
    /// `store: local`: tokens per identity in this process.
    let store: ConsistencyStore?
    /// `store: redis`: tokens per identity in Redis, for every instance.
    let sharedStore: Bool
    let stickyForMilliseconds: Int64
    let ttlSeconds: Int64
    let maxWait: TimeAmount

    /// - Parameter previous: the runtime a reload replaces: its in-process tokens stay, so a
    ///   client's read after its write keeps its guarantee across the reload.
    init(_ settings: ConsistencyConfig, previous: ConsistencyRuntime? = nil) {
        self.settings = settings
        codec = ConsistencyTokenCodec(secret: settings.secret ?? "")
        store = settings.store == .local ? previous?.store ?? LocalConsistencyStore() : nil
        sharedStore = settings.store == .redis
        stickyForMilliseconds = settings.stickyFor.nanoseconds / 1_000_000
        ttlSeconds = max(1, settings.tokenTTL.nanoseconds / 1_000_000_000)
        maxWait = settings.maxWait.timeAmount
    }

    var enabled: Bool { settings.mode != .none }

    /// Whether writes record tokens per identity (in this process or in Redis).
    var keepsTokensByIdentity: Bool { store != nil || sharedStore }

    static func unixMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// The token a request carries (header first, then cookie), verified.
    func presentedToken(_ head: HTTPHead, now: Int64) -> ConsistencyToken? {
        if let text = head.firstValue(named: settings.header), let token = codec.decode(text, now: now) {
            return token
        }
        if let text = head.cookie(settings.cookie) { return codec.decode(text, now: now) }
        return nil
    }

    /// Set-Cookie and token header for a new token.
    func issueHeaders(_ token: ConsistencyToken) -> [(String, String)] {
        let text = codec.encode(token)
        return [
            ("Set-Cookie", "\(settings.cookie)=\(text); Path=/; Max-Age=\(ttlSeconds); HttpOnly; SameSite=Lax" + (settings.cookieSecure ? "; Secure" : "")),
            (settings.header, text),
        ]
    }

    /// Clears the cookie of a token every replica has passed.
    var dropHeaders: [(String, String)] {
        [("Set-Cookie", "\(settings.cookie)=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" + (settings.cookieSecure ? "; Secure" : ""))]
    }
}
