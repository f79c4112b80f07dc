/// Redis Cluster's key → slot function: CRC16 (XMODEM) of the key modulo 16384, where a key
/// with a non-empty `{...}` hashes only what is inside the first braces (a hash tag: keys that
/// share one live in one slot, so one script may touch them all).
public enum RedisSlot {
    public static let count = 16384

    public static func of(_ key: some Collection<UInt8>) -> Int {
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let inside = key[key.index(after: open)...]
            if let close = inside.firstIndex(of: UInt8(ascii: "}")), close != inside.startIndex {
                return Int(crc16(inside[..<close]) % UInt16(count))
            }
        }
        return Int(crc16(key) % UInt16(count))
    }

    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { of($0) }
    }

    static func crc16(_ bytes: some Collection<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte)) & 0xFF]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
