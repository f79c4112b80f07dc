import HTTPWire
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
    private var buffer: ByteBuffer
    private var lines = 0
    private var flushScheduled = false
    private var stampSecond = -1
    private var stampPrefix: [UInt8] = []

    init(output: any AccessLogOutput, eventLoop: EventLoop) {
        self.output = output
        self.eventLoop = eventLoop
        buffer = ByteBufferAllocator().buffer(capacity: Self.batchBytes + 4096)
    }

    /// One request's line, its keys in alphabetical order. Written into memory reserved for the line's largest possible size
    /// (every text value fully escaped), with no capacity check per byte.
    /// - Parameter path: the request target's bytes as received (no String is made of them).
    func record<Path: Collection<UInt8>>(method: String, path: Path, status: Int, pool: String, server: String, route: String,
                                         region: String, nanoseconds: Int64, bytesIn: Int, bytesOut: Int, client: String,
                                         requestID: RequestID, retries: Int, cache: String, tls: String, http2: Bool,
                                         trace: TraceContext?) {
        let texts = path.count + method.utf8.count + cache.utf8.count + client.utf8.count + pool.utf8.count
            + region.utf8.count + route.utf8.count + server.utf8.count + (requestID.client?.utf8.count ?? 32) + tls.utf8.count
        // Keys, timestamp and five numbers take under 320 bytes; each text at most doubles, plus quotes.
        let bound = 400 + 2 * texts
        let now = Logfmt.now()
        refreshStamp(second: Int(now.tv_sec))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
            var w = RawHeadWriter(memory)
            stampPrefix.withUnsafeBytes { w.write($0) }
            Logfmt.appendPadded(Int(now.tv_nsec) / 1_000_000, width: 3, to: &w)
            w.write("Z level=info logger=access msg=request bytes_in=")
            Logfmt.appendDecimal(bytesIn, to: &w)
            w.write(" bytes_out=")
            Logfmt.appendDecimal(bytesOut, to: &w)
            w.write(" cache=")
            Logfmt.appendValue(cache.utf8, to: &w)
            w.write(" client=")
            Logfmt.appendValue(client.utf8, to: &w)
            w.write(" duration_ms=")
            Logfmt.appendMilliseconds(nanoseconds, to: &w)
            w.write(" method=")
            Logfmt.appendValue(method.utf8, to: &w)
            w.write(" path=")
            Logfmt.appendValue(path, to: &w)
            w.write(" pool=")
            Logfmt.appendValue(pool.utf8, to: &w)
            w.write(http2 ? " proto=h2 region=" : " proto=http/1.1 region=")
            Logfmt.appendValue(region.utf8, to: &w)
            w.write(" request_id=")
            if let given = requestID.client {
                Logfmt.appendValue(given.utf8, to: &w)
            } else {
                w.writeHex(high: requestID.high, low: requestID.low)
            }
            w.write(" retries=")
            Logfmt.appendDecimal(retries, to: &w)
            w.write(" route=")
            Logfmt.appendValue(route.utf8, to: &w)
            w.write(" server=")
            Logfmt.appendValue(server.utf8, to: &w)
            w.write(" status=")
            Logfmt.appendDecimal(status, to: &w)
            w.write(" tls=")
            Logfmt.appendValue(tls.utf8, to: &w)
            if let trace {
                w.write(" trace_id=")
                w.writeHex(high: trace.traceHigh, low: trace.traceLow)
            } else {
                w.write(" trace_id=-")
            }
            w.write(byte: 0x0A)
            return w.count
        }
        lines += 1
        if buffer.readableBytes >= Self.batchBytes {
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
        output.write(buffer, lines: lines)
        buffer.clear()
        lines = 0
    }

    /// `ts=2026-12-01T21:40:02.`, remade when the second changes.
    private func refreshStamp(second: Int) {
        if second != stampSecond {
            stampSecond = second
            stampPrefix = Array("ts=".utf8) + Logfmt.secondPrefix(second)
        }
    }
}
