import HTTPWire

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
}
