import HTTPWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// logfmt's rules in one place, for the application log (`LogfmtLogHandler`) and the access log
/// (`AccessLogBuffer`), so the two agree byte for byte on quoting and timestamps.
enum Logfmt {
    /// A value as is when it has no space, quote, `=` or backslash; otherwise quoted, with quotes,
    /// backslashes and newlines escaped and other control characters shown as `?` (a request
    /// path cannot forge a second line or field). At most `2 × count + 2` bytes.
    static func appendValue<Bytes: Collection<UInt8>, Sink: LogfmtSink>(_ text: Bytes, to line: inout Sink) {
        let needsQuotes = text.isEmpty || text.contains { $0 <= 0x20 || $0 == 0x22 || $0 == 0x3D || $0 == 0x5C || $0 == 0x7F }
        guard needsQuotes else {
            line.put(contentsOf: text)
            return
        }
        line.put(0x22)
        for byte in text {
            switch byte {
            case 0x22: line.put(0x5C); line.put(0x22)
            case 0x5C: line.put(0x5C); line.put(0x5C)
            case 0x0A: line.put(0x5C); line.put(UInt8(ascii: "n"))
            case 0x0D: line.put(0x5C); line.put(UInt8(ascii: "r"))
            case 0..<0x20, 0x7F: line.put(UInt8(ascii: "?"))
            default: line.put(byte)
            }
        }
        line.put(0x22)
    }

    /// A non-negative integer in decimal, without making a String.
    static func appendDecimal<Sink: LogfmtSink>(_ value: Int, to line: inout Sink) {
        guard value > 0 else {
            if value == 0 { line.put(UInt8(ascii: "0")) } else { line.put(contentsOf: String(value).utf8) }
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { out in
            while rest > 0 {
                out[19 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            }
            line.put(contentsOf: out[(20 - count)...])
        }
    }

    /// `value` with at least `width` digits (zero-padded).
    static func appendPadded<Sink: LogfmtSink>(_ value: Int, width: Int, to line: inout Sink) {
        var power = 10
        for _ in 1..<width {
            if value < power { line.put(UInt8(ascii: "0")) }
            power *= 10
        }
        appendDecimal(value, to: &line)
    }

    /// Milliseconds with three decimals (`1.012`) from nanoseconds.
    static func appendMilliseconds<Sink: LogfmtSink>(_ nanoseconds: Int64, to line: inout Sink) {
        let micros = Int(max(0, nanoseconds) / 1000)
        appendDecimal(micros / 1000, to: &line)
        line.put(UInt8(ascii: "."))
        appendPadded(micros % 1000, width: 3, to: &line)
    }

    /// The wall clock now.
    static func now() -> timespec {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return spec
    }

    /// `2026-12-01T21:40:02.` for a second since the epoch: an RFC 3339 UTC timestamp up to its
    /// fraction, which the caller ends with three digits of milliseconds and `Z`.
    static func secondPrefix(_ second: Int) -> [UInt8] {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var line: [UInt8] = []
        line.reserveCapacity(20)
        appendPadded(Int(parts.tm_year) + 1900, width: 4, to: &line); line.append(UInt8(ascii: "-"))
        appendPadded(Int(parts.tm_mon) + 1, width: 2, to: &line); line.append(UInt8(ascii: "-"))
        appendPadded(Int(parts.tm_mday), width: 2, to: &line); line.append(UInt8(ascii: "T"))
        appendPadded(Int(parts.tm_hour), width: 2, to: &line); line.append(UInt8(ascii: ":"))
        appendPadded(Int(parts.tm_min), width: 2, to: &line); line.append(UInt8(ascii: ":"))
        appendPadded(Int(parts.tm_sec), width: 2, to: &line); line.append(UInt8(ascii: "."))
        return line
    }

    /// An RFC 3339 UTC timestamp with milliseconds.
    static func appendTimestamp(_ spec: timespec, to line: inout [UInt8]) {
        line.append(contentsOf: secondPrefix(Int(spec.tv_sec)))
        appendPadded(Int(spec.tv_nsec) / 1_000_000, width: 3, to: &line)
        line.append(UInt8(ascii: "Z"))
    }
}

/// Where logfmt bytes are put: a growing array (the application log) or a writer over memory
/// reserved for the line (the access log, no capacity check per byte).
protocol LogfmtSink {
    mutating func put(_ byte: UInt8)
    mutating func put<Bytes: Collection<UInt8>>(contentsOf bytes: Bytes)
}

extension Array: LogfmtSink where Element == UInt8 {
    mutating func put(_ byte: UInt8) { append(byte) }
    mutating func put<Bytes: Collection<UInt8>>(contentsOf bytes: Bytes) { append(contentsOf: bytes) }
}

extension RawHeadWriter: LogfmtSink {
    mutating func put(_ byte: UInt8) { write(byte: byte) }
    mutating func put<Bytes: Collection<UInt8>>(contentsOf bytes: Bytes) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0)) }
        if done == nil { for byte in bytes { write(byte: byte) } }
    }
}
