import COpenSSL

/// A Lua script, run with `EVALSHA` by its SHA-1 and sent in full (`EVAL`, which also caches
/// it) only when the server answers `NOSCRIPT` — after a restart or `SCRIPT FLUSH`.
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        sha1 = Self.sha1Hex(Array(source.utf8))
    }

    /// SHA-1 from libcrypto: only because Redis names scripts by it.
    static func sha1Hex(_ input: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        _ = input.withUnsafeBufferPointer { data in
            digest.withUnsafeMutableBufferPointer { SHA1(data.baseAddress, data.count, $0.baseAddress) }
        }
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}
