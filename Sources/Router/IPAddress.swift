/// An IPv4 or IPv6 address as one 128-bit number; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`)
/// so CIDR tables of both families are one comparison.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var bits: UInt128

    public init(bits: UInt128) { self.bits = bits }

    public init(ipv4: UInt32) {
        bits = (UInt128(0xFFFF) << 32) | UInt128(ipv4)
    }

    /// From the 16 bytes of an IPv6 address in network order.
    public init<Bytes: Collection>(ipv6Bytes bytes: Bytes) where Bytes.Element == UInt8 {
        var value: UInt128 = 0
        for byte in bytes { value = value << 8 | UInt128(byte) }
        bits = value
    }

    public var isIPv4: Bool { bits >> 32 == 0xFFFF }

    public var ipv4: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: bits) : nil }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool { lhs.bits < rhs.bits }

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (with `::`, an embedded IPv4 tail, an optional
    /// zone after `%`, and optional brackets).
    public init?(_ text: some StringProtocol) {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }
        if let v4 = Self.parseIPv4(text) {
            self.init(ipv4: v4)
        } else if let v6 = Self.parseIPv6(text) {
            self.init(bits: v6)
        } else {
            return nil
        }
    }

    private static func parseIPv4(_ text: Substring) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                  let octet = UInt32(part), octet <= 255,
                  !(part.count > 1 && part.first == "0")
            else { return nil }
            value = value << 8 | octet
            parts += 1
        }
        return parts == 4 ? value : nil
    }

    private static func parseIPv6(_ text: Substring) -> UInt128? {
        guard text.contains(":") else { return nil }
        let halves = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count <= 2, !(halves.count == 2 && (halves[1].contains("::"))) else { return nil }

        func groups(_ part: Substring, allowIPv4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, piece) in pieces.enumerated() {
                if allowIPv4Tail, i == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseIPv4(piece) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard !piece.isEmpty, piece.count <= 4, let group = UInt16(piece, radix: 16) else { return nil }
                    result.append(group)
                }
            }
            return result
        }

        let all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowIPv4Tail: false),
                  let tail = groups(halves[1], allowIPv4Tail: true),
                  head.count + tail.count <= 7
            else { return nil }
            all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(halves[0], allowIPv4Tail: true), only.count == 8 else { return nil }
            all = only
        }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    /// Dotted IPv4, or RFC 5952 IPv6 (lowercase, longest zero run as `::`).
    public var description: String {
        if let v4 = ipv4 {
            return "\(v4 >> 24).\(v4 >> 16 & 0xFF).\(v4 >> 8 & 0xFF).\(v4 & 0xFF)"
        }
        let groups = (0..<8).map { UInt16(truncatingIfNeeded: bits >> (112 - 16 * $0)) }
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8, groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength, i - runStart >= 2 { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
