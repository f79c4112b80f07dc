/// The one place that decides who the client is, for routing, logs and rate limits alike.
///
/// The socket peer, unless the peer is a trusted proxy: then the rightmost address in
/// `X-Forwarded-For` (or `Forwarded: for=`) that is not itself a trusted proxy. Taking the
/// rightmost untrusted hop means a client cannot choose its address by sending a forged header:
/// everything left of the first untrusted hop was written by someone untrusted.
public enum ClientAddress {
    public static func resolve(peer: IPAddress, trusted: CIDRSet, forwardedFor: String?, forwarded: String?) -> IPAddress {
        guard !trusted.isEmpty, trusted.contains(peer) else { return peer }
        var hops: [IPAddress] = []
        if let forwardedFor {
            for item in forwardedFor.split(separator: ",") {
                if let address = parse(item.trimmingSpaces()) { hops.append(address) }
            }
        } else if let forwarded {
            for element in forwarded.split(separator: ",") {
                for pair in element.split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[0].trimmingSpaces().lowercased() == "for" else { continue }
                    var value = parts[1].trimmingSpaces()
                    if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
                    if let address = parse(value) { hops.append(address) }
                }
            }
        }
        for hop in hops.reversed() where !trusted.contains(hop) {
            return hop
        }
        return hops.first ?? peer
    }

    /// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443`, `2001:db8::1`.
    static func parse(_ text: String) -> IPAddress? {
        if let address = IPAddress(text) { return address }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            return IPAddress(text[text.index(after: text.startIndex)..<close])
        }
        if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
            return IPAddress(text[..<colon])
        }
        return nil
    }
}
