import Logging

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

    private func appendValue(_ text: String, to line: inout [UInt8]) {
        Logfmt.appendValue(text.utf8, to: &line)
    }

    private func appendTimestamp(to line: inout [UInt8]) {
        Logfmt.appendTimestamp(Logfmt.now(), to: &line)
    }
}
