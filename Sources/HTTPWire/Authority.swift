/// RFC 3986 §3.2.2 hosts, as RFC 9112 §3.2 requires of `Host` and of an absolute-form target's
/// authority: `host [":" port]` where host is an IPv4 address or registered name (unreserved,
/// sub-delims, percent-encoded octets) or a bracketed IPv6 literal, and port is digits. No
/// userinfo, no `/`, `?`, `#`, spaces or controls: a Host the gateway forwards, routes by and
/// keys cache entries by is one that means one thing.
public enum Authority {
    public static func isValid(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ count: Int) -> Bool {
        var i = start
        let end = start + count
        if i < end, bytes[i] == UInt8(ascii: "[") {
            // An IPv6 literal (with an optional embedded IPv4 address).
            i += 1
            let literalStart = i
            while i < end, bytes[i] != UInt8(ascii: "]") {
                guard ASCII.hexValue(bytes[i]) != nil || bytes[i] == ASCII.colon || bytes[i] == UInt8(ascii: ".") else { return false }
                i += 1
            }
            guard i < end, i > literalStart else { return false }
            i += 1
        } else {
            while i < end, bytes[i] != ASCII.colon {
                let byte = bytes[i]
                if byte == UInt8(ascii: "%") {
                    guard i + 2 < end, ASCII.hexValue(bytes[i + 1]) != nil, ASCII.hexValue(bytes[i + 2]) != nil else { return false }
                    i += 3
                    continue
                }
                guard isRegNameChar(byte) else { return false }
                i += 1
            }
        }
        guard i < end else { return true }
        // ":" port (digits; RFC 3986 allows an empty port).
        guard bytes[i] == ASCII.colon else { return false }
        i += 1
        while i < end {
            guard bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") else { return false }
            i += 1
        }
        return true
    }

    /// unreserved / sub-delims.
    @inline(__always)
    static func isRegNameChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
             UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }
}
