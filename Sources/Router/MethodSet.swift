/// A set of request methods as a bitmask for the standard ones, so a route's method check is
/// one AND instead of hashing an enum with a string payload.
public struct MethodSet: Sendable, Equatable {
    private var mask: UInt16 = 0
    private var others: [String] = []

    public init<S: Sequence>(_ methods: S) where S.Element == RequestMethod {
        for method in methods { insert(method) }
    }

    public mutating func insert(_ method: RequestMethod) {
        if let bit = Self.bit(method) { mask |= bit } else if case .other(let name) = method, !others.contains(name) { others.append(name) }
    }

    @inline(__always)
    public func contains(_ method: RequestMethod) -> Bool {
        if let bit = Self.bit(method) { return mask & bit != 0 }
        if case .other(let name) = method { return others.contains(name) }
        return false
    }

    @inline(__always)
    static func bit(_ method: RequestMethod) -> UInt16? {
        switch method {
        case .get: 1
        case .head: 2
        case .post: 4
        case .put: 8
        case .delete: 16
        case .patch: 32
        case .options: 64
        case .connect: 128
        case .trace: 256
        case .other: nil
        }
    }
}
