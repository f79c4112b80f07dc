import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line per event in logfmt (`ts=... level=info logger=access msg=request status=200 ...`):
/// structured enough for Loki or Vector to parse, plain enough to read in a terminal.
public struct LogfmtLogHandler: LogHandler {
    let label: String
    let sink: LogSink
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    /// Access logs go to standard output, everything else to standard error.
    public static func make(label: String, level: Logger.Level) -> LogfmtLogHandler {
        LogfmtLogHandler(label: label, sink: label == "access" ? .standardOutput : .standardError, level: level)
    }

    /// Writes pending lines before the process exits.
    public static func flushAll() {
        LogSink.standardOutput.flush()
        LogSink.standardError.flush()
    }

    init(label: String, sink: LogSink, level: Logger.Level) {
        self.label = label
        self.sink = sink
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        append("ts=", to: &line)
        appendTimestamp(to: &line)
        append(" level=", to: &line)
        append(event.level.rawValue, to: &line)
        append(" logger=", to: &line)
        append(label, to: &line)
        append(" msg=", to: &line)
        appendValue(event.message.description, to: &line)
        for (key, value) in metadata where event.metadata?[key] == nil {
            appendPair(key, value, to: &line)
        }
        if let extra = event.metadata {
            // Stable order makes lines easy to scan by eye.
            for key in extra.keys.sorted() {
                appendPair(key, extra[key]!, to: &line)
            }
        }
        line.append(0x0A)
        sink.write(line)
    }

    private func appendPair(_ key: String, _ value: Logger.Metadata.Value, to line: inout [UInt8]) {
        line.append(0x20)
        append(key, to: &line)
        line.append(UInt8(ascii: "="))
        appendValue(value.description, to: &line)
    }

    private func append(_ text: String, to line: inout [UInt8]) {
        line.append(contentsOf: text.utf8)
    }

    /// Quotes values with spaces, quotes or `=`; escapes quotes, backslashes and newlines.
    private func appendValue(_ text: String, to line: inout [UInt8]) {
        let needsQuotes = text.isEmpty || text.utf8.contains { $0 <= 0x20 || $0 == 0x22 || $0 == 0x3D || $0 == 0x5C }
        guard needsQuotes else {
            line.append(contentsOf: text.utf8)
            return
        }
        line.append(0x22)
        for byte in text.utf8 {
            switch byte {
            case 0x22: line.append(contentsOf: [0x5C, 0x22])
            case 0x5C: line.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: line.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: line.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0..<0x20: line.append(UInt8(ascii: "?"))
            default: line.append(byte)
            }
        }
        line.append(0x22)
    }

    /// RFC 3339 UTC with milliseconds.
    private func appendTimestamp(to line: inout [UInt8]) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ count: Int) {
            let text = String(value)
            for _ in text.utf8.count..<max(count, text.utf8.count) { line.append(UInt8(ascii: "0")) }
            line.append(contentsOf: text.utf8)
        }
        digits(Int(parts.tm_year) + 1900, 4); line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2); line.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2); line.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2); line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2); line.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2); line.append(UInt8(ascii: "."))
        digits(Int(spec.tv_nsec) / 1_000_000, 3); line.append(UInt8(ascii: "Z"))
    }
}
