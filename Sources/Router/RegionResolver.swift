/// Decides a client's region: a header set by a trusted edge (CloudFront-Viewer-Country: DE →
/// eu-west), else the client address in a CIDR table, else the default region.
public struct RegionResolver: Sendable {
    public let names: [String]
    public let defaultRegion: Int
    /// Lowercased header name, and values (uppercased) → region index.
    public let header: (name: String, map: [String: Int])?
    public let cidrs: CIDRTable<Int>
    /// Header values that name a region directly, uppercased.
    private let regionByUppercasedName: [String: Int]

    public init(names: [String], defaultRegion: Int, header: (name: String, map: [String: Int])?, cidrs: CIDRTable<Int>) {
        self.names = names
        self.defaultRegion = defaultRegion
        self.header = header.map { (name: $0.name.lowercased(), map: Dictionary(uniqueKeysWithValues: $0.map.map { ($0.key.uppercased(), $0.value) })) }
        self.cidrs = cidrs
        var byName: [String: Int] = [:]
        for (index, name) in names.enumerated() { byName[name.uppercased()] = index }
        regionByUppercasedName = byName
    }

    public func index(of name: String) -> Int? { names.firstIndex(of: name) }

    /// - Parameter headerTrusted: the header came through a trusted proxy; anyone else could
    ///   choose their region by sending it.
    public func resolve(client: IPAddress?, headerTrusted: Bool, headers: some RequestHeaders) -> Int {
        if headerTrusted, let header, let value = headers.firstValue(named: header.name) {
            // Edges send country codes in capitals: try the value as it is before uppercasing.
            if let region = header.map[value] { return region }
            let key = Self.asciiUppercased(value)
            if let region = header.map[key] ?? regionByUppercasedName[key] { return region }
        }
        if let client, let region = cidrs.lookup(client) { return region }
        return defaultRegion
    }

    static func asciiUppercased(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") || $0 > 0x7F }) else { return text }
        return String(decoding: text.utf8.map { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") ? $0 - 32 : $0 }, as: UTF8.self)
    }
}
