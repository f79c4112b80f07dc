/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
public struct CIDRBlock: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    /// In the 128-bit space: an IPv4 `/8` is stored as `/104`.
    public let prefixLength: Int
    private let mask: UInt128

    public init(network: IPAddress, prefixLength: Int) {
        let mask: UInt128 = prefixLength == 0 ? 0 : ~UInt128(0) << (128 - prefixLength)
        self.network = IPAddress(bits: network.bits & mask)
        self.prefixLength = prefixLength
        self.mask = mask
    }

    /// Parses `ADDRESS/PREFIX`, or a bare address as a single-host block.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let familyBits = address.isIPv4 ? 32 : 128
        var prefix = familyBits
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), parsed >= 0, parsed <= familyBits else { return nil }
            prefix = parsed
        }
        self.init(network: address, prefixLength: address.isIPv4 ? 96 + prefix : prefix)
    }

    public func contains(_ address: IPAddress) -> Bool {
        address.bits & mask == network.bits
    }

    public var description: String {
        network.isIPv4 && prefixLength >= 96 ? "\(network)/\(prefixLength - 96)" : "\(network)/\(prefixLength)"
    }
}

/// A set of blocks, checked most specific first so that a lookup table (CIDR → region) gives
/// the longest-prefix match.
public struct CIDRTable<Value: Sendable>: Sendable {
    private var entries: [(block: CIDRBlock, value: Value)]

    public init(_ entries: [(CIDRBlock, Value)] = []) {
        self.entries = entries.map { (block: $0.0, value: $0.1) }.sorted { $0.block.prefixLength > $1.block.prefixLength }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public func lookup(_ address: IPAddress) -> Value? {
        for entry in entries where entry.block.contains(address) { return entry.value }
        return nil
    }
}

/// Membership only (trusted proxies, allowlists).
public struct CIDRSet: Sendable {
    private let table: CIDRTable<Void>

    public init(_ blocks: [CIDRBlock]) {
        table = CIDRTable(blocks.map { ($0, ()) })
    }

    public var isEmpty: Bool { table.isEmpty }

    public func contains(_ address: IPAddress) -> Bool {
        table.lookup(address) != nil
    }
}
