import Cache
import HTTPWire
import NIOCore

/// The one writer of response heads to HTTP/1.1 clients, for every kind of answer — a
/// forwarded upstream head, a cached entry, the gateway's own response — so that each gets the
/// same additions in the same order: `X-Request-Id`, the fields of the route's filters (CORS,
/// `RateLimit`, read-your-writes tokens, ...), the debug fields, and the connection's
/// persistence. Each head is written into one reservation with `RawHeadWriter`; the wire types
/// know nothing of filters, and filters nothing of the wire.
enum ResponseComposer {
    enum Persistence: Equatable {
        /// HTTP/1.1 and keep-alive: nothing to say.
        case implicit
        /// An HTTP/1.0 client that asked for keep-alive.
        case keepAlive
        case close
        /// A 101: the connection becomes the tunnel of the protocol named by `Upgrade`.
        case upgrade
    }

    /// What the head says besides its own fields.
    struct Context {
        /// nil for refusals, which never became exchanges (no route, no filters).
        var exchange: Exchange?
        var requestID: RequestID
        var persistence: Persistence
        /// The `Date` of heads the gateway makes (the loop's cached one).
        var date: String
        var debugHeaders: Bool
    }

    static func write(_ head: ResponseHead, framing: ClientFraming, _ context: Context, into out: inout ByteBuffer) {
        switch head {
        case .upstream(let response): writeUpstream(response, framing: framing, context, into: &out)
        case .cached(let answer): writeCached(answer, context, into: &out)
        case .local(let response): writeLocal(response, context, into: &out)
        }
    }

    // MARK: The three kinds of head

    /// The upstream's status line and fields as they came (hop-by-hop fields removed, and any a
    /// filter replaces), the client's framing, then the additions.
    private static func writeUpstream(_ head: HTTPHead, framing: ClientFraming, _ context: Context, into out: inout ByteBuffer) {
        let debug = debugFields(context)
        let bound = head.raw.readableBytes + head.fields.count + 64 + additionsLength(.upstream, context, debug)
        _ = head.raw.withUnsafeReadableBytes { raw in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
                var w = RawHeadWriter(memory)
                w.write("HTTP/1.1 ")
                w.write(UnsafeRawBufferPointer(rebasing: raw[head.part2]))
                w.write(" ")
                w.write(UnsafeRawBufferPointer(rebasing: raw[head.part3]))
                w.write("\r\n")
                var hasRequestID = false
                let exchange = context.exchange
                let rewrites = exchange?.rewritesUpstreamFields ?? false
                // A 101 names the protocol switched to: its Upgrade goes with it.
                let switching = context.persistence == .upgrade
                for field in head.fields where !field.hopByHop || (switching && field.kind == .upgrade) {
                    if field.kind == .xRequestID { hasRequestID = true }
                    let name = field.name(in: raw)
                    if rewrites, exchange!.chain.dropsUpstreamField(exchange!, name) { continue }
                    w.header(name, field.value(in: raw))
                }
                if framing == .chunked {
                    w.write("Transfer-Encoding: chunked\r\n")
                }
                writeAdditions(.upstream, context, debug, requestID: !hasRequestID, into: &w)
                return w.count
            }
        }
    }

    /// The stored fields (or, for a 304, the validators among them), the body's length and the
    /// entry's `Age`, then the additions.
    private static func writeCached(_ answer: CachedAnswer, _ context: Context, into out: inout ByteBuffer) {
        let entry = answer.entry
        let validators = answer.notModified ? validatorFields(of: entry.headerBlock) : nil
        let bound = statusLineLength + max(context.date.utf8.count, entry.date?.utf8.count ?? 0) + 2 * decimalFieldLength
            + (validators?.utf8.count ?? entry.headerBlock.readableBytes)
            + additionsLength(.cached, context, [])
        // Room for a Content-Range line too (three 64-bit numbers).
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound + 4 * decimalFieldLength) { memory in
            var w = RawHeadWriter(memory)
            // The origin's Date, as stored (RFC 9111 §4), with the Age that has passed since.
            writeStatusLine(answer.status, date: entry.date ?? context.date, into: &w)
            if let validators {
                w.write(validators)
            } else {
                entry.headerBlock.withUnsafeReadableBytes { w.write($0) }
                let total = UInt64(entry.body.readableBytes)
                switch answer.range {
                case .whole:
                    w.write("Content-Length: ")
                    w.writeDecimal(total)
                case .partial(let bytes):
                    w.write("Content-Range: bytes ")
                    w.writeDecimal(UInt64(bytes.lowerBound))
                    w.write("-")
                    w.writeDecimal(UInt64(bytes.upperBound - 1))
                    w.write("/")
                    w.writeDecimal(total)
                    w.write("\r\nContent-Length: ")
                    w.writeDecimal(UInt64(bytes.count))
                case .unsatisfiable:
                    w.write("Content-Range: bytes */")
                    w.writeDecimal(total)
                    w.write("\r\nContent-Length: 0")
                }
                w.write("\r\n")
            }
            w.write("Age: ")
            w.writeDecimal(UInt64(max(0, entry.age(now: answer.now))))
            w.write("\r\n")
            writeAdditions(.cached, context, [], requestID: true, into: &w)
            return w.count
        }
    }

    private static func writeLocal(_ response: LocalResponse, _ context: Context, into out: inout ByteBuffer) {
        var bound = statusLineLength + context.date.utf8.count + decimalFieldLength + additionsLength(.local, context, [])
        for (name, value) in response.headers { bound += name.utf8.count + value.utf8.count + 4 }
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
            var w = RawHeadWriter(memory)
            writeStatusLine(response.status, date: context.date, into: &w)
            w.write("Content-Length: ")
            w.writeDecimal(UInt64(response.body.readableBytes))
            w.write("\r\n")
            for (name, value) in response.headers {
                w.header(name, value)
            }
            writeAdditions(.local, context, [], requestID: true, into: &w)
            return w.count
        }
    }

    // MARK: What every head gets

    /// `HTTP/1.1 NNN <reason>\r\nDate: ` and its CRLF, without the date (reasons are short).
    private static let statusLineLength = 9 + 20 + 1 + 48 + 8 + 2
    /// `Content-Length: N\r\n` or `Age: N\r\n` with any 64-bit N.
    private static let decimalFieldLength = 16 + 20 + 2

    private static func writeStatusLine(_ status: Int, date: String, into w: inout RawHeadWriter) {
        w.write("HTTP/1.1 ")
        w.writeDecimal(UInt64(status))
        w.write(" ")
        w.write(StatusReason.phrase(status))
        w.write("\r\nDate: ")
        w.write(date)
        w.write("\r\n")
    }

    private static func additionsLength(_ kind: ResponseKind, _ context: Context, _ debug: [(String, String)]) -> Int {
        var length = 16 + RawHeadWriter.length(of: context.requestID) + 28
        if let exchange = context.exchange { length += exchange.chain.fieldsLength(exchange, kind) }
        for (name, value) in debug { length += name.utf8.count + value.utf8.count + 4 }
        return length
    }

    private static func writeAdditions(_ kind: ResponseKind, _ context: Context, _ debug: [(String, String)], requestID: Bool,
                                       into w: inout RawHeadWriter) {
        if requestID {
            w.write("X-Request-Id: ")
            w.write(context.requestID)
            w.write("\r\n")
        }
        if let exchange = context.exchange {
            exchange.chain.writeFields(exchange, kind, into: &w)
        }
        for (name, value) in debug {
            w.header(name, value)
        }
        switch context.persistence {
        case .implicit: break
        case .keepAlive: w.write("Connection: keep-alive\r\n")
        case .close: w.write("Connection: close\r\n")
        case .upgrade: w.write("Connection: upgrade\r\n")
        }
        w.write("\r\n")
    }

    /// With `debug_headers`: where an upstream answer was routed.
    private static func debugFields(_ context: Context) -> [(String, String)] {
        guard context.debugHeaders, let exchange = context.exchange else { return [] }
        let decision = exchange.decision
        return [
            ("X-Gateway-Route", decision.isRead ? "read" : "write"),
            ("X-Gateway-Region", exchange.runtime.router.regions.names[decision.region]),
            ("X-Gateway-Pool", exchange.pool?.name ?? "-"), ("X-Gateway-Server", exchange.server?.authority ?? "-"),
        ]
    }

    /// A 304 carries the fields a 200 would have that describe the stored representation
    /// (RFC 9110 §15.4.5), not its content fields.
    private static func validatorFields(of block: ByteBuffer) -> String {
        let keep: Set<String> = ["cache-control", "content-location", "etag", "expires", "vary", "last-modified"]
        var text = ""
        for line in String(buffer: block).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":"), keep.contains(line[..<colon].lowercased()) else { continue }
            text += line + "\r\n"
        }
        return text
    }
}
