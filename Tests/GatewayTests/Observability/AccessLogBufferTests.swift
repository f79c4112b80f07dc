import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Gateway

/// The access log's own formatter and batching: lines byte-compatible with the logfmt handler
/// that wrote them before, handed over once per loop iteration, and drops counted.
@Suite(.timeLimit(.minutes(1))) struct AccessLogBufferTests {
    static let keys = ["ts", "level", "logger", "msg", "bytes_in", "bytes_out", "cache", "client", "duration_ms", "method",
                       "path", "pool", "proto", "region", "request_id", "retries", "route", "server", "status", "tls", "trace_id"]

    func record(_ log: AccessLogBuffer, path: String = "/items/1", nanoseconds: Int64 = 1_012_345,
                requestID: RequestID = RequestID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210)) {
        log.record(method: "GET", path: path.utf8, status: 200, pool: "primary", server: "127.0.0.1:18080", route: "read",
                   region: "us-east", nanoseconds: nanoseconds, bytesIn: 0, bytesOut: 11, client: "127.0.0.1",
                   requestID: requestID, retries: 0, cache: "-", tls: "-", http2: false, trace: nil)
    }

    @Test func linesAreHandedOverOncePerLoopIteration() throws {
        let loop = EmbeddedEventLoop()
        let capture = LogCapture()
        let log = AccessLogBuffer(output: capture, eventLoop: loop)
        for _ in 0..<5 { record(log) }
        #expect(capture.batches == 0)
        loop.run()
        #expect(capture.batches == 1)
        #expect(capture.entries.count == 5)
        record(log)
        loop.run()
        #expect(capture.batches == 2)
        #expect(capture.entries.count == 6)
    }

    @Test func aFullBatchGoesAtOnce() throws {
        let loop = EmbeddedEventLoop()
        let capture = LogCapture()
        let log = AccessLogBuffer(output: capture, eventLoop: loop)
        let long = "/" + String(repeating: "p", count: 1000)
        var recorded = 0
        while capture.batches == 0 && recorded < 200 {
            record(log, path: long)
            recorded += 1
        }
        #expect(capture.batches == 1)
        #expect(capture.raw.utf8.count >= AccessLogBuffer.batchBytes)
        #expect(capture.raw.utf8.count < AccessLogBuffer.batchBytes + 2048)
        loop.run()
        #expect(capture.entries.count == recorded)
    }

    @Test func theLineHasTheKeysInTheirOrderAndItsValuesEscaped() throws {
        let loop = EmbeddedEventLoop()
        let capture = LogCapture()
        let log = AccessLogBuffer(output: capture, eventLoop: loop)
        record(log)
        record(log, path: "/a b\"c\\d\ne\u{1}", nanoseconds: 12_345_678_901, requestID: RequestID(client: "id=7"))
        record(log, nanoseconds: 0)
        loop.run()
        let lines = capture.raw.split(separator: "\n")
        #expect(lines.count == 3)
        for line in lines {
            #expect(LogCapture.parse(line).map(\.key) == Self.keys)
        }
        let first = String(lines[0])
        #expect(first.range(of: #"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "#, options: .regularExpression) != nil)
        #expect(first.hasSuffix(" level=info logger=access msg=request bytes_in=0 bytes_out=11 cache=- client=127.0.0.1 duration_ms=1.012 method=GET path=/items/1 pool=primary proto=http/1.1 region=us-east request_id=0123456789abcdeffedcba9876543210 retries=0 route=read server=127.0.0.1:18080 status=200 tls=- trace_id=-"))
        #expect(lines[1].contains(#" duration_ms=12345.678 method=GET path="/a b\"c\\d\ne?" pool="#))
        #expect(lines[1].contains(#" request_id="id=7" "#))
        #expect(lines[2].contains(" duration_ms=0.000 "))
        #expect(capture.entries[1].metadata["path"] == "/a b\"c\\d\ne?")
    }

    /// Every text value escaped to its largest form still fits the memory reserved for the line
    /// (the debug build checks each write against it).
    @Test func theLongestEscapedLineFitsItsReservation() throws {
        let loop = EmbeddedEventLoop()
        let capture = LogCapture()
        let log = AccessLogBuffer(output: capture, eventLoop: loop)
        let quotes = String(repeating: "\"", count: 3000)
        let slashes = String(repeating: "\\", count: 200)
        log.record(method: quotes, path: quotes.utf8, status: Int.max, pool: slashes, server: slashes, route: "\n\n",
                   region: quotes, nanoseconds: .max, bytesIn: .max, bytesOut: .max, client: slashes,
                   requestID: RequestID(client: slashes), retries: .max, cache: quotes, tls: quotes, http2: false,
                   trace: nil)
        loop.run()
        let entry = try #require(capture.entries.first)
        #expect(entry.metadata["path"] == .string(quotes))
        #expect(entry.metadata["request_id"] == .string(slashes))
        #expect(entry.metadata["status"] == .string(String(Int.max)))
    }

    /// The same fields through the application log's handler give the same line: the access
    /// log's format did not change when it stopped going through Logger.
    @Test func theLineIsTheOneTheLogfmtHandlerWrites() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let handler = LogfmtLogHandler(label: "access", sink: LogSink(fd: fds[1]), level: .info)
        let logger = Logger(label: "access") { _ in handler }
        logger.info("request", metadata: [
            "method": "GET", "path": "/q?a=b c", "status": "200", "pool": "primary", "server": "127.0.0.1:18080",
            "route": "read", "region": "us-east", "duration_ms": "1.012", "bytes_in": "0", "bytes_out": "11",
            "client": "::1", "request_id": "0123456789abcdeffedcba9876543210", "retries": "0", "cache": "HIT",
            "proto": "h2", "tls": "TLSv1.3", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        ])
        var bytes = [UInt8](repeating: 0, count: 4096)
        var handled = ""
        for _ in 0..<100 where !handled.hasSuffix("\n") {
            let n = read(fds[0], &bytes, bytes.count)
            if n > 0 { handled += String(decoding: bytes[0..<n], as: UTF8.self) }
        }
        let loop = EmbeddedEventLoop()
        let capture = LogCapture()
        let log = AccessLogBuffer(output: capture, eventLoop: loop)
        log.record(method: "GET", path: "/q?a=b c".utf8, status: 200, pool: "primary", server: "127.0.0.1:18080", route: "read",
                   region: "us-east", nanoseconds: 1_012_999, bytesIn: 0, bytesOut: 11, client: "::1",
                   requestID: RequestID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210), retries: 0, cache: "HIT",
                   tls: "TLSv1.3", http2: true,
                   trace: TraceContext(traceHigh: 0x4bf9_2f35_77b3_4da6, traceLow: 0xa3ce_929d_0e0e_4736, spanID: 1, flags: 1, continued: true))
        loop.run()
        func withoutTimestamp(_ line: String) -> Substring { line.drop { $0 != " " } }
        #expect(withoutTimestamp(handled) == withoutTimestamp(capture.raw))
        #expect(capture.raw.contains(#"path="/q?a=b c""#))
    }

    /// A writer that cannot keep up loses whole batches, and says how many lines.
    @Test func aStalledOutputDropsAndCountsLines() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        // Left open: the sink's thread stays blocked in write(2) on it (closing the read end
        // would raise SIGPIPE in this process).
        // Nobody reads the pipe: once its 64 KiB are full, the writer thread blocks.
        let sink = LogSink(fd: fds[1], maxPending: 4096)
        let batch = [UInt8](repeating: UInt8(ascii: "x"), count: 999) + [0x0A]
        for _ in 0..<200 {
            sink.write(batch + batch, lines: 2)
        }
        #expect(sink.droppedLines > 0)
        #expect(sink.droppedLines % 2 == 0)
        #expect(sink.droppedLines < 400)  // the first batches were taken
    }

    /// The access log's writer wakes on its own schedule, not per batch: small batches wait for
    /// the interval (or a flush) and then go out together, in order.
    @Test func theWriterBatchesOnItsIntervalAndFlushWritesTheRest() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        func drain() -> String {
            var bytes = [UInt8](repeating: 0, count: 65536)
            var text = ""
            while true {
                let n = read(fds[0], &bytes, bytes.count)
                guard n > 0 else { return text }
                text += String(decoding: bytes[0..<n], as: UTF8.self)
            }
        }
        // An interval longer than the test: only flush() can write.
        let slow = LogSink(fd: fds[1], writeInterval: 60)
        slow.write(Array("one\n".utf8), lines: 1)
        slow.write(Array("two\n".utf8), lines: 1)
        usleep(200_000)
        #expect(drain() == "")
        slow.flush()
        #expect(drain() == "one\ntwo\n")
        // A short interval: the lines arrive without anyone waking the writer.
        let quick = LogSink(fd: fds[1], writeInterval: 0.05)
        for i in 0..<3 { quick.write(Array("line \(i)\n".utf8), lines: 1) }
        var received = ""
        for _ in 0..<100 where received.count < 21 {
            usleep(20_000)
            received += drain()
        }
        #expect(received == "line 0\nline 1\nline 2\n")
    }
}
