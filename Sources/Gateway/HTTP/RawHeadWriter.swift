#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cursor over memory reserved in an outgoing buffer. Heads are written by copying byte ranges
/// of the parsed head and a few literals; doing it with `memcpy` into one reservation, instead of
/// one capacity-checked `ByteBuffer` call per piece, halves the cost of forwarding a head.
struct RawHeadWriter {
    let base: UnsafeMutableRawPointer
    private(set) var count = 0
    #if DEBUG
    let capacity: Int
    #endif

    init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        #if DEBUG
        capacity = buffer.count
        #endif
    }

    @inline(__always)
    private mutating func copy(_ source: UnsafeRawPointer, _ length: Int) {
        #if DEBUG
        precondition(count + length <= capacity, "head larger than its reservation")
        #endif
        memcpy(base + count, source, length)
        count += length
    }

    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { copy(bytes.baseAddress!, bytes.count) }
    }

    @inline(__always)
    mutating func write(_ literal: StaticString) {
        copy(literal.utf8Start, literal.utf8CodeUnitCount)
    }

    @inline(__always)
    mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// A header line: `name: value\r\n`.
    @inline(__always)
    mutating func header(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        write(name)
        write(": ")
        write(value)
        write("\r\n")
    }

    @inline(__always)
    mutating func header(_ name: String, _ value: String) {
        write(name)
        write(": ")
        write(value)
        write("\r\n")
    }

    /// A request ID as written in heads (32 hex digits, or the client's own).
    mutating func write(_ id: RequestID) {
        if let client = id.client {
            write(client)
            return
        }
        let digits: StaticString = "0123456789abcdef"
        let hex = digits.utf8Start
        let out = (base + count).assumingMemoryBound(to: UInt8.self)
        for i in 0..<16 {
            out[i] = hex[Int((id.high >> (60 - 4 * UInt64(i))) & 0xF)]
            out[16 + i] = hex[Int((id.low >> (60 - 4 * UInt64(i))) & 0xF)]
        }
        count += 32
    }

    static func length(of id: RequestID) -> Int { id.client?.utf8.count ?? 32 }
}

extension HeaderField {
    @inline(__always)
    func name(in raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[Int(nameStart)..<Int(nameStart + nameLength)])
    }

    @inline(__always)
    func value(in raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[Int(valueStart)..<Int(valueStart + valueLength)])
    }
}
