import HTTPWire
import NIOCore

/// What the gateway adds when it forwards a request.
struct ForwardingContext {
    /// The socket peer, appended to X-Forwarded-For.
    var peerAddress: String
    /// A trusted proxy's X-Forwarded-Proto and X-Forwarded-Host are kept; anyone else's replaced.
    var peerIsTrusted: Bool
    /// The request came over TLS: `X-Forwarded-Proto: https`.
    var secure = false
    /// When the client sent it, it is already in the head and forwarded as is.
    var requestID: RequestID
    /// The request's trace: the client's `traceparent` is replaced by one naming the gateway's
    /// span (and its `tracestate` dropped when the gateway started the trace). nil: both pass as is.
    var trace: TraceContext? = nil
    /// The routing headers (X-Gateway-Target, X-Gateway-Region) as header lines, each ending
    /// in CRLF: rendered once per configuration (`GatewayRuntime.routingFields`), copied whole.
    var routingFields: [UInt8] = []
    /// The verified token's claims as headers (`claims_to_headers`).
    var claimHeaders: [(String, String)] = []
    /// Lowercased names the client may not send (the claim headers): its copies are dropped.
    var reservedNames: [[UInt8]] = []
    /// A fetch that fills the cache: the client's conditional headers go (the cache needs the
    /// whole response, not a 304 about the client's copy).
    var dropConditionals = false
    /// The normalized path the request was routed by: what is forwarded, so that the upstream
    /// serves the resource the gateway routed (not `/x/../admin` routed as `/admin`).
    var path: Substring = "/"
    /// A revalidation's `If-None-Match` / `If-Modified-Since` (the stored entry's validators).
    var conditionals: [(String, String)] = []
    /// A protocol switch the route allows: the client's `Upgrade` value, forwarded with
    /// `Connection: upgrade` (both are hop-by-hop, so only on purpose).
    var upgrade: String?
}

/// Writes the head of a request as the gateway forwards it upstream: origin-form target with
/// the normalized path it was routed by, HTTP/1.1, hop-by-hop fields removed, X-Forwarded-* and
/// X-Request-Id set, body framing declared for what the gateway will actually send.
enum RequestHeadWriter {
    static func isReserved(_ field: HeaderField, _ raw: UnsafeRawBufferPointer, _ names: [[UInt8]]) -> Bool {
        let start = Int(field.nameStart)
        let length = Int(field.nameLength)
        for name in names where name.count == length {
            var equal = true
            for i in 0..<length where ASCII.lowercased(raw[start + i]) != name[i] {
                equal = false
                break
            }
            if equal { return true }
        }
        return false
    }

    static func write(_ head: HTTPHead, context: ForwardingContext, chunkedBody: Bool, into out: inout ByteBuffer) {
        let absoluteAuthority = head.absoluteFormAuthority
        let keepProto = context.peerIsTrusted && head.firstField(.xForwardedProto) != nil
        let keepHost = context.peerIsTrusted && head.firstField(.xForwardedHost) != nil
        let forwardedHost = keepHost ? nil : head.host
        let combinedForwardedFor = head.fields.lazy.filter { $0.kind == .xForwardedFor }.count > 1
            ? head.combinedValue(.xForwardedFor) : nil
        var path = context.path

        var bound = head.raw.readableBytes * 2 + 192 + context.peerAddress.utf8.count + path.utf8.count
            + RawHeadWriter.length(of: context.requestID) + (forwardedHost?.utf8.count ?? 0)
            + (combinedForwardedFor?.utf8.count ?? 0) + (absoluteAuthority?.utf8.count ?? 0) * 2
        bound += context.routingFields.count
        for (name, value) in context.claimHeaders { bound += name.utf8.count + value.utf8.count + 4 }
        for (name, value) in context.conditionals { bound += name.utf8.count + value.utf8.count + 4 }
        if let upgrade = context.upgrade { bound += upgrade.utf8.count + 40 }
        if context.trace != nil { bound += TraceContext.headerLength }

        _ = head.raw.withUnsafeReadableBytes { raw in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { memory in
                var w = RawHeadWriter(memory)
                w.write(UnsafeRawBufferPointer(rebasing: raw[head.part1]))
                w.write(" ")
                path.withUTF8 { w.write(UnsafeRawBufferPointer($0)) }
                // The query as the client sent it.
                let target = UnsafeRawBufferPointer(rebasing: raw[head.part2])
                if let question = target.firstIndex(of: ASCII.question) {
                    w.write(UnsafeRawBufferPointer(rebasing: target[question...]))
                }
                w.write(" HTTP/1.1\r\n")

                var forwardedFor: UnsafeRawBufferPointer?
                for field in head.fields where !field.hopByHop {
                    switch field.kind {
                    case .xForwardedFor:
                        // Several X-Forwarded-For fields are one list, written once below.
                        if forwardedFor == nil { forwardedFor = field.value(in: raw) }
                        continue
                    case .xForwardedProto where !context.peerIsTrusted, .xForwardedHost where !context.peerIsTrusted:
                        continue
                    case .xRequestID where !context.requestID.fromClient:
                        // A client ID that was refused is replaced by the generated one below.
                        continue
                    case .traceparent where context.trace != nil:
                        // Replaced below by the gateway's span in the same trace.
                        continue
                    case .tracestate where context.trace?.continued == false:
                        // The vendors' state of a trace the client's invalid traceparent did not name.
                        continue
                    case .xGatewayTarget, .xGatewayRegion:
                        // The gateway's own routing headers: a client cannot set them.
                        continue
                    case .ifNoneMatch where context.dropConditionals, .ifModifiedSince where context.dropConditionals:
                        continue
                    case .host where absoluteAuthority != nil:
                        w.header("Host", absoluteAuthority!)
                        continue
                    case .forwarded where !context.peerIsTrusted:
                        // The gateway does not believe an untrusted Forwarded; neither should the upstream.
                        continue
                    case .contentLength:
                        // Repeated or listed identical values are one length (written below).
                        continue
                    case .other where !context.reservedNames.isEmpty && Self.isReserved(field, raw, context.reservedNames):
                        // Claim headers come from the verified token only, never from the client.
                        continue
                    default:
                        w.header(field.name(in: raw), field.value(in: raw))
                    }
                }

                w.write("X-Forwarded-For: ")
                if let combinedForwardedFor {
                    w.write(combinedForwardedFor)
                    w.write(", ")
                } else if let forwardedFor, forwardedFor.count > 0 {
                    w.write(forwardedFor)
                    w.write(", ")
                }
                w.write(context.peerAddress)
                w.write("\r\n")
                if let absoluteAuthority, head.firstField(.host) == nil {
                    w.header("Host", absoluteAuthority)
                }
                if !keepProto {
                    w.write(context.secure ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n")
                }
                if let forwardedHost {
                    w.header("X-Forwarded-Host", forwardedHost)
                }
                context.trace?.writeHeader(into: &w)
                if !context.requestID.fromClient {
                    w.write("X-Request-Id: ")
                    w.write(context.requestID)
                    w.write("\r\n")
                }
                context.routingFields.withUnsafeBytes { w.write($0) }
                for (name, value) in context.claimHeaders {
                    w.header(name, value)
                }
                for (name, value) in context.conditionals {
                    w.header(name, value)
                }
                if let upgrade = context.upgrade {
                    w.write("Connection: upgrade\r\nUpgrade: ")
                    w.write(upgrade)
                    w.write("\r\n")
                }
                if chunkedBody {
                    w.write("Transfer-Encoding: chunked\r\n")
                } else if case .length(let length) = head.framing, head.firstField(.contentLength) != nil {
                    w.write("Content-Length: ")
                    w.writeDecimal(UInt64(length))
                    w.write("\r\n")
                }
                w.write("\r\n")
                return w.count
            }
        }
    }
}
