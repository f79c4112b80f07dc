import NIOCore

/// One event loop's access log. Each line is formatted straight into this loop's byte buffer (no
/// Logger metadata dictionary, no String per number, the timestamp's date part made once per
/// second) and the buffer goes to the output in one piece: at the end of the loop iteration that
/// added the first line, or at once when it reaches 64 KiB. A busy loop thus hands over dozens of
/// lines per batch without a timer of its own; the output (`LogSink`) decides when bytes reach
/// the file.
///
/// Only the loop's thread touches it.
final class AccessLogBuffer {
    /// Past this, the batch is handed over before the iteration ends.
    static let batchBytes = 64 * 1024

    private let output: any AccessLogOutput
    private let eventLoop: EventLoop
    private var bytes: [UInt8] = []
    private var lines = 0
    private var flushScheduled = false
    private var stampSecond = -1
    private var stampPrefix: [UInt8] = []

    init(output: any AccessLogOutput, eventLoop: EventLoop) {
        self.output = output
        self.eventLoop = eventLoop
        bytes.reserveCapacity(Self.batchBytes + 1024)
    }

    /// One request's line. The keys are the ones the gateway has always logged, in the same
    /// (alphabetical) order.
    /// `path`: the request target's bytes as received (no String is made of them).
    func record<Path: Collection<UInt8>>(method: String, path: Path, status: Int, pool: String, server: String, route: String,
                region: String, nanoseconds: Int64, bytesIn: Int, bytesOut: Int, client: String,
                requestID: RequestID, retries: Int, cache: String) {
        appendStamp()
        bytes.append(contentsOf: " level=info logger=access msg=request bytes_in=".utf8)
        Logfmt.appendDecimal(bytesIn, to: &bytes)
        bytes.append(contentsOf: " bytes_out=".utf8)
        Logfmt.appendDecimal(bytesOut, to: &bytes)
        bytes.append(contentsOf: " cache=".utf8)
        Logfmt.appendValue(cache.utf8, to: &bytes)
        bytes.append(contentsOf: " client=".utf8)
        Logfmt.appendValue(client.utf8, to: &bytes)
        bytes.append(contentsOf: " duration_ms=".utf8)
        Logfmt.appendMilliseconds(nanoseconds, to: &bytes)
        bytes.append(contentsOf: " method=".utf8)
        Logfmt.appendValue(method.utf8, to: &bytes)
        bytes.append(contentsOf: " path=".utf8)
        Logfmt.appendValue(path, to: &bytes)
        bytes.append(contentsOf: " pool=".utf8)
        Logfmt.appendValue(pool.utf8, to: &bytes)
        bytes.append(contentsOf: " region=".utf8)
        Logfmt.appendValue(region.utf8, to: &bytes)
        bytes.append(contentsOf: " request_id=".utf8)
        if let given = requestID.client {
            Logfmt.appendValue(given.utf8, to: &bytes)
        } else {
            requestID.appendHex(to: &bytes)
        }
        bytes.append(contentsOf: " retries=".utf8)
        Logfmt.appendDecimal(retries, to: &bytes)
        bytes.append(contentsOf: " route=".utf8)
        Logfmt.appendValue(route.utf8, to: &bytes)
        bytes.append(contentsOf: " server=".utf8)
        Logfmt.appendValue(server.utf8, to: &bytes)
        bytes.append(contentsOf: " status=".utf8)
        Logfmt.appendDecimal(status, to: &bytes)
        bytes.append(0x0A)
        lines += 1
        if bytes.count >= Self.batchBytes {
            flush()
        } else if !flushScheduled {
            flushScheduled = true
            // Runs after this iteration's I/O events: every line they added goes in one batch.
            eventLoop.execute { [self] in
                flushScheduled = false
                flush()
            }
        }
    }

    /// Hands whatever is buffered to the output (also at shutdown).
    func flush() {
        guard lines > 0 else { return }
        output.write(bytes, lines: lines)
        bytes.removeAll(keepingCapacity: true)
        lines = 0
    }

    /// `ts=2026-12-01T21:40:02.118Z`, the part up to the second cached until the second changes.
    private func appendStamp() {
        let now = Logfmt.now()
        let second = Int(now.tv_sec)
        if second != stampSecond {
            stampSecond = second
            stampPrefix = Array("ts=".utf8) + Logfmt.secondPrefix(second)
        }
        bytes.append(contentsOf: stampPrefix)
        Logfmt.appendPadded(Int(now.tv_nsec) / 1_000_000, width: 3, to: &bytes)
        bytes.append(UInt8(ascii: "Z"))
    }
}
