/// Byte classes of RFC 9110 used by the HTTP/1.1 parser, as lookup tables so that validating a
/// header costs one load per byte.
public enum ASCII {
    public static let cr: UInt8 = 13
    public static let lf: UInt8 = 10
    public static let space: UInt8 = 32
    public static let tab: UInt8 = 9
    public static let colon: UInt8 = 58
    public static let semicolon: UInt8 = 59
    public static let comma: UInt8 = 44
    public static let slash: UInt8 = 47
    public static let question: UInt8 = 63

    /// `tchar` of RFC 9110 §5.6.2 (the characters of a method or header name) as a 128-bit
    /// bitmap: a constant, so a check is two shifts, with no table to initialise or bounds-check.
    @inline(__always)
    public static func isTokenChar(_ byte: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_6CFA_0000_0000
        let high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        if byte < 64 { return (low >> UInt64(byte)) & 1 == 1 }
        if byte < 128 { return (high >> UInt64(byte &- 64)) & 1 == 1 }
        return false
    }

    /// Bytes allowed in a field value: VCHAR, SP, HTAB and obs-text. CR, LF, NUL and the other
    /// controls are refused, because they are how header injection and smuggling start.
    @inline(__always)
    public static func isFieldValueChar(_ byte: UInt8) -> Bool {
        (byte >= 0x20 && byte != 0x7F) || byte == ASCII.tab
    }

    /// Bytes allowed in a request-target: visible ASCII only (no spaces, controls or raw UTF-8).
    @inline(__always)
    public static func isTargetChar(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F
    }

    /// OWS of RFC 9110 §5.6.3: what surrounds a field value and a list's elements.
    @inline(__always)
    public static func isOWS(_ byte: UInt8) -> Bool {
        byte == space || byte == tab
    }

    @inline(__always)
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte &- 65) < 26 ? byte | 0x20 : byte
    }

    /// Exact comparison of `count` bytes at `offset` with an ASCII literal.
    @inline(__always)
    public static func equals(
        _ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int, _ literal: StaticString
    ) -> Bool {
        compare(bytes, offset, count, literal, foldingCase: false)
    }

    /// Case-insensitive comparison of `count` bytes at `offset` with a lowercase ASCII literal.
    @inline(__always)
    public static func equalsLowercase(
        _ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int, _ literal: StaticString
    ) -> Bool {
        compare(bytes, offset, count, literal, foldingCase: true)
    }

    /// The one loop of both (inlined with the constant flag, so neither pays for the other).
    @inline(__always)
    private static func compare(
        _ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int, _ literal: StaticString, foldingCase: Bool
    ) -> Bool {
        guard count == literal.utf8CodeUnitCount else { return false }
        let lit = literal.utf8Start
        for i in 0..<count {
            let byte = bytes[offset + i]
            if (foldingCase ? lowercased(byte) : byte) != lit[i] { return false }
        }
        return true
    }

    /// Parses a non-negative decimal integer (Content-Length); nil when empty, not all digits,
    /// or too large to be a body length.
    public static func parseDecimal(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> Int? {
        guard count > 0, count <= 18 else { return nil }
        var value = 0
        for i in offset..<(offset + count) {
            let digit = bytes[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }

    @inline(__always)
    public static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
