import HTTPWire

/// A request's W3C Trace Context (https://www.w3.org/TR/trace-context/): the trace it belongs
/// to and the gateway's own span in it. A valid `traceparent` from the client is continued —
/// same trace id and flags, a new span id for the hop through the gateway (what the upstream
/// sees as its parent); otherwise a trace is started, its id the request's generated ID (so the
/// access log's `request_id` and `trace_id` agree) or fresh random bits. Two integers each, no
/// String per request.
struct TraceContext: Equatable {
    let traceHigh: UInt64
    let traceLow: UInt64
    let spanID: UInt64
    let flags: UInt8
    /// The client sent a valid `traceparent` (false: the gateway started this trace, and the
    /// client's `tracestate`, if any, describes no trace of ours and is dropped).
    let continued: Bool

    /// The parts of a valid `traceparent` value: version-traceid-parentid-flags, lowercase hex,
    /// version not `ff`, ids not all zero; a later version may append `-...` after the flags.
    static func parse(_ value: UnsafeRawBufferPointer) -> (traceHigh: UInt64, traceLow: UInt64, parent: UInt64, flags: UInt8)? {
        guard value.count >= 55, value[2] == UInt8(ascii: "-"), value[35] == UInt8(ascii: "-"), value[52] == UInt8(ascii: "-"),
              let version = hex(value, 0, 2), version != 0xFF,
              version != 0 ? (value.count == 55 || value[55] == UInt8(ascii: "-")) : value.count == 55,
              let high = hex(value, 3, 16), let low = hex(value, 19, 16), high | low != 0,
              let parent = hex(value, 36, 16), parent != 0,
              let flags = hex(value, 53, 2)
        else { return nil }
        return (high, low, parent, UInt8(flags))
    }

    /// `count` lowercase hex digits from `start` (W3C allows no upper case).
    private static func hex(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ count: Int) -> UInt64? {
        var value: UInt64 = 0
        for i in start..<start + count {
            let byte = bytes[i]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// The trace of `head`: continued from its one valid `traceparent`, else started.
    static func of(_ head: HTTPHead, requestID: RequestID, sampled: Bool, generator: inout RequestIDGenerator) -> TraceContext {
        let span = generator.nextWord() | 1  // never the invalid all-zero id
        var found: (traceHigh: UInt64, traceLow: UInt64, parent: UInt64, flags: UInt8)?
        var count = 0
        for field in head.fields where field.kind == .traceparent {
            count += 1
            found = head.raw.withUnsafeReadableBytes { raw in parse(field.value(in: raw)) }
        }
        if count == 1, let found {
            return TraceContext(traceHigh: found.traceHigh, traceLow: found.traceLow, spanID: span, flags: found.flags, continued: true)
        }
        let (high, low) = requestID.fromClient ? (generator.nextWord(), generator.nextWord()) : (requestID.high, requestID.low)
        return TraceContext(traceHigh: high, traceLow: low | (high == 0 ? 1 : 0), spanID: span, flags: sampled ? 1 : 0, continued: false)
    }

    /// `traceparent: 00-TRACE-SPAN-FLAGS\r\n` (68 bytes).
    func writeHeader(into w: inout RawHeadWriter) {
        w.write("traceparent: 00-")
        w.writeHex(high: traceHigh, low: traceLow)
        w.write("-")
        w.writeHex(spanID)
        w.write("-")
        w.writeHex(byte: flags)
        w.write("\r\n")
    }

    static let headerLength = 68
}
