import NIOCore

/// Where access log lines go. Each event loop hands over whole lines in batches (see
/// `AccessLogBuffer`), so an output is called once per batch, from any loop's thread.
public protocol AccessLogOutput: Sendable {
    /// `bytes` holds `lines` complete logfmt lines, each ending in a newline.
    func write(_ bytes: ByteBuffer, lines: Int)
    /// Lines the output could not take (it fell too far behind), for
    /// `gateway_access_log_dropped_lines_total`.
    var droppedLines: Int { get }
}

/// The outputs the gateway itself uses.
public enum AccessLogOutputs {
    /// Standard output, written by a background thread so a loop never waits on a pipe or disk.
    public static var standardOutput: any AccessLogOutput { LogSink.standardOutput }
}
