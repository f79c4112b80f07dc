#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The route table: patterns compiled into a trie once, at configuration time.
///
/// Semantics are "first match wins" in configuration order (as Envoy's route list): the trie
/// only narrows the routes whose path can match and the lowest-numbered candidate whose
/// method, host and header conditions hold is the match. The walk runs over the path's UTF-8
/// bytes: segments are offsets, literal children are found by an FNV-1a hash and confirmed
/// with `memcmp`; nothing is split, hashed as a String, or allocated.
public final class RouteTable: Sendable {
    public struct Entry: Sendable {
        public let pattern: PathPattern
        public let conditions: RouteConditions

        public init(pattern: PathPattern, conditions: RouteConditions = RouteConditions()) {
            self.pattern = pattern
            self.conditions = conditions
        }
    }

    public struct Match: Sendable {
        public let index: Int
    }

    public let entries: [Entry]
    private let root: Node

    final class Node: Sendable {
        /// Literal children, sorted by hash; `literalBytes` confirms a hash hit.
        let literalHashes: [UInt64]
        let literalBytes: [[UInt8]]
        let literalNodes: [Node]
        /// `{name}` and `*`: any one segment.
        let anySegment: Node?
        /// Routes whose pattern ends here.
        let terminal: [Int]
        /// Routes ending in `**` here: they match whatever remains.
        let rest: [Int]

        init(literals: [(hash: UInt64, bytes: [UInt8], node: Node)], anySegment: Node?, terminal: [Int], rest: [Int]) {
            let sorted = literals.sorted { $0.hash < $1.hash }
            literalHashes = sorted.map(\.hash)
            literalBytes = sorted.map(\.bytes)
            literalNodes = sorted.map(\.node)
            self.anySegment = anySegment
            self.terminal = terminal
            self.rest = rest
        }

        @inline(__always)
        func literal(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, hash: UInt64) -> Node? {
            var low = 0
            var high = literalHashes.count
            while low < high {
                let middle = (low + high) / 2
                if literalHashes[middle] < hash { low = middle + 1 } else { high = middle }
            }
            while low < literalHashes.count, literalHashes[low] == hash {
                let candidate = literalBytes[low]
                if candidate.count == end - start,
                   candidate.withUnsafeBufferPointer({ memcmp($0.baseAddress!, bytes.baseAddress! + start, end - start) }) == 0 {
                    return literalNodes[low]
                }
                low += 1
            }
            return nil
        }
    }

    /// Mutable while building.
    private final class Builder {
        var literals: [String: Builder] = [:]
        var anySegment: Builder?
        var terminal: [Int] = []
        var rest: [Int] = []

        func freeze() -> Node {
            Node(literals: literals.map { (fnv1a(Array($0.key.utf8)[...]), Array($0.key.utf8), $0.value.freeze()) },
                 anySegment: anySegment?.freeze(), terminal: terminal, rest: rest)
        }
    }

    public init(_ entries: [Entry]) {
        self.entries = entries
        let root = Builder()
        for (index, entry) in entries.enumerated() {
            var node = root
            for segment in entry.pattern.segments {
                switch segment {
                case .literal(let literal):
                    if node.literals[literal] == nil { node.literals[literal] = Builder() }
                    node = node.literals[literal]!
                case .parameter, .anySegment:
                    if node.anySegment == nil { node.anySegment = Builder() }
                    node = node.anySegment!
                case .rest:
                    node.rest.append(index)
                    continue
                }
            }
            if entry.pattern.segments.last != .rest {
                node.terminal.append(index)
            }
        }
        self.root = root.freeze()
    }

    public func match(path: NormalizedPath, method: RequestMethod, host: String?, headers: some RequestHeaders) -> Match? {
        var best = Int.max
        path.withBytes { bytes in
            search(root, bytes, 0, method, host, headers, &best)
        }
        return best == Int.max ? nil : Match(index: best)
    }

    /// The `{name}` segments a matched route captured, in the pattern's order.
    public func parameters(of match: Match, path: NormalizedPath) -> [Substring] {
        entries[match.index].pattern.match(path) ?? []
    }

    private func search(
        _ node: Node, _ bytes: UnsafeBufferPointer<UInt8>, _ position: Int, _ method: RequestMethod, _ host: String?,
        _ headers: some RequestHeaders, _ best: inout Int
    ) {
        if !node.rest.isEmpty { consider(node.rest, method, host, headers, &best) }
        var start = position
        let count = bytes.count
        while start < count, bytes[start] == UInt8(ascii: "/") { start += 1 }
        guard start < count else {
            consider(node.terminal, method, host, headers, &best)
            return
        }
        var end = start
        var hash: UInt64 = 0xcbf29ce484222325
        while end < count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "/") { break }
            hash = (hash ^ UInt64(byte)) &* 0x100000001b3
            end += 1
        }
        if !node.literalHashes.isEmpty, let child = node.literal(bytes, start, end, hash: hash) {
            search(child, bytes, end, method, host, headers, &best)
        }
        if let child = node.anySegment {
            search(child, bytes, end, method, host, headers, &best)
        }
    }

    @inline(__always)
    private func consider(_ candidates: [Int], _ method: RequestMethod, _ host: String?, _ headers: some RequestHeaders, _ best: inout Int) {
        for index in candidates {
            if index >= best { return }
            if entries[index].conditions.matches(method: method, host: host, headers: headers) {
                best = index
                return
            }
        }
    }
}

/// FNV-1a over bytes (the trie's literal hash).
func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf29ce484222325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
    return hash
}
