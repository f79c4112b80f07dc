#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cursor over memory reserved in an outgoing buffer. Heads are written by copying byte ranges
/// of the parsed head and a few literals; doing it with `memcpy` into one reservation, instead of
/// one capacity-checked `ByteBuffer` call per piece, halves the cost of forwarding a head.
public struct RawHeadWriter {
    public let base: UnsafeMutableRawPointer
    /// Bytes written so far.
    public var count: Int { written }
    @usableFromInline var written = 0
    #if DEBUG
    public let capacity: Int
    #endif

    @inlinable
    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        #if DEBUG
        capacity = buffer.count
        #endif
    }

    @inlinable @inline(__always)
    mutating func copy(_ source: UnsafeRawPointer, _ length: Int) {
        #if DEBUG
        precondition(count + length <= capacity, "head larger than its reservation")
        #endif
        memcpy(base + count, source, length)
        written += length
    }

    @inlinable @inline(__always)
    public mutating func write(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { copy(bytes.baseAddress!, bytes.count) }
    }

    @inlinable @inline(__always)
    public mutating func write(byte: UInt8) {
        #if DEBUG
        precondition(count < capacity, "head larger than its reservation")
        #endif
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        written += 1
    }

    @inlinable @inline(__always)
    public mutating func write(_ literal: StaticString) {
        copy(literal.utf8Start, literal.utf8CodeUnitCount)
    }

    /// Disfavoured so that a literal picks the `StaticString` copy (a literal typed as a String
    /// went through here: a call, a copy and a reference count per literal).
    @inlinable @inline(__always) @_disfavoredOverload
    public mutating func write(_ text: String) {
        let written = text.utf8.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0)) }
        if written == nil {
            var text = text
            text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
        }
    }

    /// A header line: `name: value\r\n`.
    @inlinable @inline(__always)
    public mutating func header(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        write(name)
        write(": ")
        write(value)
        write("\r\n")
    }

    @inlinable @inline(__always)
    public mutating func header(_ name: String, _ value: String) {
        write(name)
        write(": ")
        write(value)
        write("\r\n")
    }

    /// 128 bits as 32 lower-case hex digits (generated request IDs).
    @inlinable
    public mutating func writeHex(high: UInt64, low: UInt64) {
        writeHex(high)
        writeHex(low)
    }

    /// 64 bits as 16 lower-case hex digits (half a request ID, a trace's span id).
    @inlinable
    public mutating func writeHex(_ value: UInt64) {
        #if DEBUG
        precondition(count + 16 <= capacity, "head larger than its reservation")
        #endif
        let digits: StaticString = "0123456789abcdef"
        let out = (base + count).assumingMemoryBound(to: UInt8.self)
        for i in 0..<16 { out[i] = digits.utf8Start[Int((value >> (60 - 4 * UInt64(i))) & 0xF)] }
        written += 16
    }

    /// A byte as 2 lower-case hex digits.
    @inlinable
    public mutating func writeHex(byte: UInt8) {
        let digits: StaticString = "0123456789abcdef"
        write(byte: digits.utf8Start[Int(byte >> 4)])
        write(byte: digits.utf8Start[Int(byte & 0xF)])
    }

    /// A number in decimal, without making a String.
    @inlinable
    public mutating func writeDecimal(_ value: UInt64) {
        // 20 digits hold any UInt64.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var length = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[length] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                length += 1
            } while rest > 0
            for i in 0..<(length / 2) { buffer.swapAt(i, length - 1 - i) }
            write(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        }
    }
}

extension HeaderField {
    @inlinable @inline(__always)
    public func name(in raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[Int(nameStart)..<Int(nameStart + nameLength)])
    }

    @inlinable @inline(__always)
    public func value(in raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[Int(valueStart)..<Int(valueStart + valueLength)])
    }
}
