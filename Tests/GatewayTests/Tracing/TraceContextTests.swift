import Foundation
import HTTPWire
import Router
import NIOCore
import Testing
import TestSupport

@testable import Gateway

/// W3C Trace Context: what a valid `traceparent` is, continuing or starting a trace, the head
/// the upstream gets, and through a real gateway with curl as the client.
@Suite struct TraceContextTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    func parse(_ text: String) -> (traceHigh: UInt64, traceLow: UInt64, parent: UInt64, flags: UInt8)? {
        Array(text.utf8).withUnsafeBytes { TraceContext.parse($0) }
    }

    @Test func validAndInvalidTraceparents() {
        let parsed = parse(Self.valid)
        #expect(parsed?.traceHigh == 0x4bf9_2f35_77b3_4da6 && parsed?.traceLow == 0xa3ce_929d_0e0e_4736)
        #expect(parsed?.parent == 0x00f0_67aa_0ba9_02b7 && parsed?.flags == 1)
        // A later version may carry more after the flags; version 00 may not.
        #expect(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more") != nil)
        for invalid in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",  // 00 with extra
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version ff
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // zero parent
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",        // short
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // separator
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",       // not hex
            "",
        ] {
            #expect(parse(invalid) == nil, "\(invalid) was accepted")
        }
    }

    func trace(_ headers: String, requestID: RequestID = RequestID(high: 0xAA, low: 0xBB), sampled: Bool = true) throws -> TraceContext {
        var parser = HTTP1Parser(kind: .request)
        parser.append(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: api\r\n\(headers)\r\n"))
        guard case .head(let head) = try parser.next() else { throw CancellationError() }
        var generator = RequestIDGenerator()
        return TraceContext.of(head, requestID: requestID, sampled: sampled, generator: &generator)
    }

    @Test func aValidTraceIsContinuedWithTheGatewaysOwnSpan() throws {
        let continued = try trace("traceparent: \(Self.valid)\r\n")
        #expect(continued.continued && continued.flags == 1)
        #expect(continued.traceHigh == 0x4bf9_2f35_77b3_4da6 && continued.traceLow == 0xa3ce_929d_0e0e_4736)
        #expect(continued.spanID != 0 && continued.spanID != 0x00f0_67aa_0ba9_02b7)
        // An unsampled trace stays unsampled.
        #expect(try trace("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n", sampled: true).flags == 0)
    }

    @Test func otherwiseATraceIsStartedWithTheRequestsID() throws {
        let started = try trace("")
        #expect(!started.continued && started.traceHigh == 0xAA && started.traceLow == 0xBB && started.flags == 1)
        #expect(try trace("", sampled: false).flags == 0)
        // Invalid, or two of them (W3C: not to be guessed between): a new trace.
        #expect(try !trace("traceparent: 00-zz\r\n").continued)
        #expect(try !trace("traceparent: \(Self.valid)\r\ntraceparent: \(Self.valid)\r\n").continued)
        // A client's own X-Request-Id is no trace id: random bits instead.
        let fromClientID = try trace("", requestID: RequestID(client: "abc"))
        #expect(!fromClientID.continued && (fromClientID.traceHigh | fromClientID.traceLow) != 0)
    }

    func forwarded(_ text: String, trace: TraceContext?) throws -> String {
        var parser = HTTP1Parser(kind: .request)
        parser.append(ByteBuffer(string: text))
        guard case .head(let head) = try parser.next() else { throw CancellationError() }
        var out = ByteBuffer()
        RequestHeadWriter.write(head, context: ForwardingContext(
            peerAddress: "192.0.2.9", peerIsTrusted: false, requestID: RequestID(high: 1, low: 2), trace: trace,
            path: NormalizedPath(head.path).path), chunkedBody: false, into: &out)
        return String(buffer: out)
    }

    @Test func theUpstreamGetsTheGatewaysSpanAndTracestateOnlyOfAContinuedTrace() throws {
        let request = "GET / HTTP/1.1\r\nHost: api\r\ntraceparent: \(Self.valid)\r\ntracestate: vendor=1\r\n\r\n"
        let continued = TraceContext(traceHigh: 0x4bf9_2f35_77b3_4da6, traceLow: 0xa3ce_929d_0e0e_4736, spanID: 0x1122_3344_5566_7788,
                                     flags: 1, continued: true)
        let text = try forwarded(request, trace: continued)
        #expect(text.contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-01\r\n"))
        #expect(!text.contains(Self.valid) && text.contains("tracestate: vendor=1\r\n"))
        let started = TraceContext(traceHigh: 1, traceLow: 2, spanID: 3, flags: 0, continued: false)
        let restarted = try forwarded("GET / HTTP/1.1\r\nHost: api\r\ntraceparent: junk\r\ntracestate: vendor=1\r\n\r\n", trace: started)
        #expect(restarted.contains("traceparent: 00-00000000000000010000000000000002-0000000000000003-00\r\n"))
        #expect(!restarted.contains("junk") && !restarted.contains("tracestate"))
        // Tracing off: both as the client sent them.
        let untouched = try forwarded(request, trace: nil)
        #expect(untouched.contains("traceparent: \(Self.valid)\r\n") && untouched.contains("tracestate: vendor=1\r\n"))
    }

    @Test func curlThroughTheGatewayToARealUpstream() async throws {
        let upstream = TestUpstream()
        try await upstream.start()
        func gateway(_ tracing: String) async throws -> TestGateway {
            try await TestGateway.start("""
                listen: 127.0.0.1:0
                admin: 127.0.0.1:0
                \(tracing)
                pools:
                  primary: { role: primary, servers: ["\(upstream.url)"] }
                """)
        }
        /// The headers the upstream received, as (name, value) pairs.
        func echoed(_ gateway: TestGateway, _ headers: [String]) throws -> [[String]] {
            let flags = headers.map { "-H '\($0)'" }.joined(separator: " ")
            let result = try Shell.run("curl -s \(flags) http://127.0.0.1:\(gateway.proxyPort)/echo")
            let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
            return json?["headers"] as? [[String]] ?? []
        }
        func header(_ headers: [[String]], _ name: String) -> String? {
            headers.first { $0.first?.lowercased() == name }?.last
        }
        let on = try await gateway("")
        do {
            // Continued: same trace id and flags, the gateway's span as the parent; logged.
            let continued = try echoed(on, ["traceparent: \(Self.valid)", "tracestate: congo=t61rcWkgMzE"])
            let sent = try #require(header(continued, "traceparent"))
            #expect(sent.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.hasSuffix("-01"))
            #expect(!sent.contains("00f067aa0ba902b7"))
            #expect(header(continued, "tracestate") == "congo=t61rcWkgMzE")
            // Started: the trace id is the request id.
            let started = try echoed(on, [])
            let new = try #require(header(started, "traceparent"))
            let requestID = try #require(header(started, "x-request-id"))
            #expect(new == "00-\(requestID)-\(new.dropFirst(36).prefix(16))-01")
            let traces = on.accessLog.entries.compactMap { $0.metadata["trace_id"].map { "\($0)" } }
            #expect(traces == ["4bf92f3577b34da6a3ce929d0e0e4736", requestID])
        } catch {
            await on.stop()
            await upstream.stop()
            throw error
        }
        await on.stop()
        let off = try await gateway("tracing: { enabled: false }")
        let untouched = try echoed(off, ["traceparent: \(Self.valid)"])
        #expect(header(untouched, "traceparent") == Self.valid)
        #expect(header(try echoed(off, []), "traceparent") == nil)
        await off.stop()
        await upstream.stop()
    }
}
