/// `RateLimit-Policy` and `RateLimit` of one response, kept as numbers and written straight
/// into the head: a limited route adds them to every response, and building two Strings and
/// an array per request cost more than the limiter itself.
struct RateLimitFields {
    let policy: RateLimitRuntime.Policy
    let remaining: Int
    let resetSeconds: Int64

    /// An upper bound on the written length.
    var length: Int { policy.fieldsPrefix.utf8.count + 48 }

    func write(into w: inout RawHeadWriter) {
        // `RateLimit-Policy: "NAME";q=LIMIT;w=SECONDS\r\nRateLimit: "NAME";r=`, made once per policy.
        w.write(policy.fieldsPrefix)
        w.writeDecimal(UInt64(max(0, remaining)))
        w.write(";t=")
        w.writeDecimal(UInt64(max(0, resetSeconds)))
        w.write("\r\n")
    }

    /// The same fields as pairs, for the rare responses made from `LocalResponse`.
    var pairs: [(String, String)] {
        [("RateLimit-Policy", policy.policyHeader),
         ("RateLimit", "\"\(policy.name)\";r=\(max(0, remaining));t=\(max(0, resetSeconds))")]
    }
}

extension RawHeadWriter {
    /// A number in decimal, without making a String.
    mutating func writeDecimal(_ value: UInt64) {
        // 20 digits hold any UInt64.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            for i in 0..<(count / 2) { buffer.swapAt(i, count - 1 - i) }
            write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }
}
