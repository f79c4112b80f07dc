import HTTPWire
import NIOCore

/// A request's ID: the client's `X-Request-Id` when it is a sane token, otherwise 128 random
/// bits shown as 32 hex digits (the shape of nginx's `$request_id`). Generated IDs stay two
/// integers and are written as hex straight into outgoing heads; a String is made only for logs.
struct RequestID: CustomStringConvertible {
    let high: UInt64
    let low: UInt64
    /// Set when the client supplied the ID.
    let client: String?

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        self.client = nil
    }

    init(client: String) {
        self.high = 0
        self.low = 0
        self.client = client
    }

    var fromClient: Bool { client != nil }

    /// The ID of a request: its own `X-Request-Id` when acceptable, else a new one.
    static func of(_ head: HTTPHead, generator: inout RequestIDGenerator) -> RequestID {
        if let given = head.firstValue(.xRequestID), isAcceptable(given) {
            return RequestID(client: given)
        }
        return generator.make()
    }

    func write(into buffer: inout ByteBuffer) {
        if let client {
            buffer.writeString(client)
            return
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { out in
            let digits: StaticString = "0123456789abcdef"
            for i in 0..<16 {
                out[i] = digits.utf8Start[Int((high >> (60 - 4 * UInt64(i))) & 0xF)]
                out[16 + i] = digits.utf8Start[Int((low >> (60 - 4 * UInt64(i))) & 0xF)]
            }
            return 32
        }
    }

    /// A generated ID's 32 hex digits.
    func appendHex(to bytes: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        for i in 0..<16 { bytes.append(digits.utf8Start[Int((high >> (60 - 4 * UInt64(i))) & 0xF)]) }
        for i in 0..<16 { bytes.append(digits.utf8Start[Int((low >> (60 - 4 * UInt64(i))) & 0xF)]) }
    }

    var description: String {
        if let client { return client }
        var bytes: [UInt8] = []
        appendHex(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether a client-supplied ID may be passed on: 1...200 visible ASCII characters.
    static func isAcceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        return !utf8.isEmpty && utf8.count <= 200 && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}

/// Makes request IDs on one event loop: xorshift128+, fast and unpredictable enough for
/// correlation IDs (not for secrets).
struct RequestIDGenerator {
    private var state: (UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        state = (system.next() | 1, system.next())
    }

    /// 64 random bits (request IDs, trace and span ids).
    mutating func nextWord() -> UInt64 {
        var s1 = state.0
        let s0 = state.1
        state.0 = s0
        s1 ^= s1 << 23
        state.1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26)
        return state.1 &+ s0
    }

    mutating func make() -> RequestID {
        RequestID(high: nextWord(), low: nextWord())
    }
}

extension RawHeadWriter {
    /// A request ID as written in heads (32 hex digits, or the client's own).
    mutating func write(_ id: RequestID) {
        if let client = id.client {
            write(client)
        } else {
            writeHex(high: id.high, low: id.low)
        }
    }

    static func length(of id: RequestID) -> Int { id.client?.utf8.count ?? 32 }
}
