/// A Lua script, run with `EVALSHA` by its SHA-1 and sent in full (`EVAL`, which also caches
/// it) only when the server answers `NOSCRIPT` — after a restart or `SCRIPT FLUSH`.
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        sha1 = Digest.hex(Digest.sha1(Array(source.utf8)))
    }
}
