import COpenSSL

/// SHA-256 and HMAC-SHA256 from libcrypto (OpenSSL), and constant-time comparison: the vetted
/// implementations, not hand-rolled ones.
public enum Digest {
    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        let input = Array(bytes)
        _ = input.withUnsafeBufferPointer { data in
            out.withUnsafeMutableBufferPointer { SHA256(data.baseAddress, data.count, $0.baseAddress) }
        }
        return out
    }

    public static func hmacSHA256(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        let input = Array(message)
        _ = key.withUnsafeBufferPointer { key in
            input.withUnsafeBufferPointer { data in
                out.withUnsafeMutableBufferPointer { output in
                    HMAC(EVP_sha256(), key.baseAddress, Int32(key.count), data.baseAddress, data.count, output.baseAddress, &length)
                }
            }
        }
        return out
    }

    /// Equal without leaking, through timing, how much of the two agrees.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { a in b.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }

    static let base64URLAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// base64url without padding.
    public static func base64URL(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [base64URLAlphabet[Int(n >> 18 & 63)], base64URLAlphabet[Int(n >> 12 & 63)],
                    base64URLAlphabet[Int(n >> 6 & 63)], base64URLAlphabet[Int(n & 63)]]
            i += 3
        }
        if bytes.count - i == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [base64URLAlphabet[Int(n >> 18 & 63)], base64URLAlphabet[Int(n >> 12 & 63)]]
        } else if bytes.count - i == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [base64URLAlphabet[Int(n >> 18 & 63)], base64URLAlphabet[Int(n >> 12 & 63)], base64URLAlphabet[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}
