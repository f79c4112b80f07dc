import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The IMF-fixdate for the `Date` header of responses the gateway makes itself, formatted once
/// per second per event loop instead of once per response.
public struct HTTPDateCache {
    private var second: Int = -1
    private var cached = ""

    public init() {}

    public mutating func current() -> String {
        var now = time(nil)
        if Int(now) != second {
            second = Int(now)
            cached = Self.format(&now)
        }
        return cached
    }

    public static func format(_ time: inout time_t) -> String {
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
