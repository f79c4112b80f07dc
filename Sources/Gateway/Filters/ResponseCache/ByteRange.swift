/// A `Range: bytes=...` request against a stored body of `length` bytes (RFC 9110 §14): one
/// range is served as a 206 from the entry; several, or any other unit, get the whole
/// representation (a server may ignore Range); a range that starts past the end is a 416.
enum ByteRange: Equatable {
    /// Serve the whole body (no Range, one this cache does not serve partially, or If-Range
    /// naming another version).
    case whole
    case partial(Range<Int>)
    case unsatisfiable

    static func resolve(_ header: String?, length: Int) -> ByteRange {
        guard let header else { return .whole }
        let value = header.trimmingSpaces()
        guard value.lowercased().hasPrefix("bytes="), !value.contains(",") else { return .whole }
        let spec = value.dropFirst(6).trimmingSpaces()
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .whole }
        let first = parts[0].trimmingSpaces(), last = parts[1].trimmingSpaces()
        if first.isEmpty {
            // The last N bytes.
            guard let suffix = Int(last), suffix >= 0 else { return .whole }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .partial(max(0, length - suffix)..<length)
        }
        guard let start = Int(first), start >= 0 else { return .whole }
        let end: Int
        if last.isEmpty {
            end = length - 1
        } else {
            guard let given = Int(last), given >= start else { return .whole }
            end = min(given, length - 1)
        }
        guard start < length else { return .unsatisfiable }
        return .partial(start..<(end + 1))
    }

    /// `If-Range` (RFC 9110 §13.1.5): the range applies only to the version it names, by a
    /// strong ETag or the exact Last-Modified date.
    static func ifRangeHolds(_ ifRange: String?, etag: String?, lastModified: String?) -> Bool {
        guard let ifRange = ifRange?.trimmingSpaces() else { return true }
        if ifRange.hasPrefix("\"") { return etag.map { !$0.hasPrefix("W/") && $0 == ifRange } ?? false }
        return lastModified == ifRange
    }
}
