import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP/1.1 server on loopback for proxy tests. Requests are parsed by NIOHTTP1 (an
/// implementation independent of the gateway's); responses are written as raw bytes so tests
/// can shape them exactly: lengths, chunking, close-delimited bodies, resets, delays.
///
/// Endpoints:
/// - `/echo`: JSON of the request (method, target, headers, body size and text)
/// - `/bytes/N`: N bytes of a known pattern with Content-Length, written with backpressure
/// - `/chunked/N`: the same, chunked
/// - `/until-close/N`: N bytes, no length, then the connection closes
/// - `/status/N`: an empty response with status N
/// - `/delay/MS`: 200 after MS milliseconds
/// - `/slow-head/MS`: like delay (the head is what is late)
/// - `/reset`: closes without responding
/// - `/reset-mid`: head and part of a 100 KiB body, then closes
/// - `/close`: 200 with `Connection: close`, then closes
/// - `/name`: 200 with this server's name in the body and `X-Upstream-Name`
/// - `/upload`: reads the body; JSON of its size and FNV-1a hash
/// - `/continue`: answers 100 Continue first when the client expects it
/// - anything else: 200 `{"ok":true}`
public final class TestUpstream: @unchecked Sendable {
    public let name: String
    /// Reset every request after reading it (a server that dies mid-request, every time).
    public let resetEverything: Bool
    public private(set) var port: Int = 0
    private let group: EventLoopGroup
    private var channel: Channel?
    private let counters = NIOLockedValueBox(Counters())

    public struct Counters: Sendable {
        public var connections = 0
        /// Connections open now.
        public var openConnections = 0
        public var requests = 0
        /// Body bytes written by generated responses (`/bytes`, `/chunked`, `/until-close`).
        public var bodyBytesWritten = 0
        public var requestsByPath: [String: Int] = [:]
        public var lastHeaders: [String: [String]] = [:]
    }

    public var stats: Counters { counters.withLockedValue { $0 } }

    public init(name: String = "upstream", resetEverything: Bool = false, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.name = name
        self.resetEverything = resetEverything
        self.group = group
    }

    @discardableResult
    public func start(port: Int = 0, host: String = "127.0.0.1") async throws -> Int {
        let counters = self.counters
        let name = self.name
        let resetEverything = self.resetEverything
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                counters.withLockedValue {
                    $0.connections += 1
                    $0.openConnections += 1
                }
                channel.closeFuture.whenComplete { _ in counters.withLockedValue { $0.openConnections -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                    try channel.pipeline.syncOperations.addHandler(TestUpstreamHandler(name: name, counters: counters, resetEverything: resetEverything))
                }
            }
            .bind(host: host, port: port)
            .get()
        self.channel = channel
        self.port = channel.localAddress!.port!
        return self.port
    }

    public func stop() async {
        try? await channel?.close()
        channel = nil
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    /// Generated bodies repeat with this period: a prime, so it never lines up with buffer or
    /// chunk sizes and a lost, repeated or reordered block shows.
    public static let patternPeriod = 65521
    /// Two periods back to back, so any run of up to one period is one slice.
    public static let patternTable: [UInt8] = (0..<(2 * patternPeriod)).map {
        let i = $0 % patternPeriod
        return UInt8(truncatingIfNeeded: (i &* 31) &+ (i >> 8))
    }

    /// The byte at `index` of every generated body.
    public static func patternByte(_ index: Int) -> UInt8 {
        patternTable[index % patternPeriod]
    }

    /// Whether `bytes` are the generated body from its first byte.
    public static func isPattern(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index < bytes.count {
            let count = min(patternPeriod, bytes.count - index)
            if !bytes[index..<(index + count)].elementsEqual(patternTable[0..<count]) { return false }
            index += count
        }
        return true
    }

    public static func fnv1a<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf29ce484222325) -> UInt64 where S.Element == UInt8 {
        var hash: UInt64 = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100000001b3
        }
        return hash
    }
}

final class TestUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private let name: String
    private let counters: NIOLockedValueBox<TestUpstream.Counters>
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    private var bodyHash: UInt64 = 0xcbf29ce484222325
    private var bodyText: [UInt8] = []
    /// Streaming a large body: bytes still to write.
    private var remaining = 0
    private var written = 0
    private var chunked = false
    private var closeAfterBody = false
    private var busy = false
    private var queued: [HTTPServerRequestPart] = []

    private let resetEverything: Bool

    init(name: String, counters: NIOLockedValueBox<TestUpstream.Counters>, resetEverything: Bool) {
        self.name = name
        self.counters = counters
        self.resetEverything = resetEverything
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if busy {
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            self.head = head
            bodyBytes = 0
            bodyHash = 0xcbf29ce484222325
            bodyText = []
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            counters.withLockedValue {
                $0.requests += 1
                $0.requestsByPath[path, default: 0] += 1
                var headers: [String: [String]] = [:]
                for (name, value) in head.headers { headers[name.lowercased(), default: []].append(value) }
                $0.lastHeaders = headers
            }
            if path == "/continue", head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
            }
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            bodyHash = buffer.withUnsafeReadableBytes { TestUpstream.fnv1a($0, seed: bodyHash) }
            if bodyText.count < 4096 { bodyText += buffer.readableBytesView.prefix(4096 - bodyText.count) }
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        if resetEverything {
            // SO_LINGER 0: a real reset (RST), as a crashing server's kernel sends.
            if let provider = context.channel as? SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in context.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        }
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        let parts = path.split(separator: "/").map(String.init)
        let first = parts.first ?? ""
        let argument = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        switch first {
        case "echo":
            var headers: [String] = []
            for (name, value) in head.headers {
                headers.append("[\(json(name)),\(json(value))]")
            }
            let body = "{\"method\":\(json("\(head.method)")),\"target\":\(json(head.uri)),\"version\":\"\(head.version.major).\(head.version.minor)\","
                + "\"headers\":[\(headers.joined(separator: ","))],\"body_bytes\":\(bodyBytes),"
                + "\"body\":\(json(String(decoding: bodyText, as: UTF8.self))),\"server\":\(json(name))}"
            sendSimple(status: 200, body: body, context: context)
        case "upload":
            sendSimple(status: 200, body: "{\"bytes\":\(bodyBytes),\"fnv1a\":\"\(String(bodyHash, radix: 16))\"}", context: context)
        case "name":
            sendSimple(status: 200, body: name, extra: "X-Upstream-Name: \(name)\r\n", context: context)
        case "status":
            sendSimple(status: argument, body: "", context: context)
        case "bytes", "chunked", "until-close":
            chunked = first == "chunked"
            closeAfterBody = first == "until-close"
            var headText = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            if first == "bytes" { headText += "Content-Length: \(argument)\r\n" }
            if chunked { headText += "Transfer-Encoding: chunked\r\n" }
            if closeAfterBody { headText += "Connection: close\r\n" }
            headText += "\r\n"
            context.write(wrapOutboundOut(ByteBuffer(string: headText)), promise: nil)
            remaining = head.method == .HEAD ? 0 : argument
            written = 0
            busy = true
            writeBody(context: context)
        case "delay", "slow-head":
            busy = true
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(argument))) {
                self.sendSimple(status: 200, body: "{\"delayed_ms\":\(argument)}", context: context)
                self.finishResponse(context: context)
            }
            return
        case "reset":
            context.close(promise: nil)
            return
        case "reset-mid":
            let headText = "HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n"
            context.write(wrapOutboundOut(ByteBuffer(string: headText)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(repeating: 0x61, count: 1000))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            busy = true
            return
        case "close":
            let response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            busy = true
            return
        default:
            sendSimple(status: 200, body: "{\"ok\":true}", context: context)
        }
        if !busy { finishResponse(context: context) }
    }

    private func sendSimple(status: Int, body: String, extra: String = "", context: ChannelHandlerContext) {
        let reason = status == 200 ? "OK" : "Status"
        var text = "HTTP/1.1 \(status) \(reason)\r\n"
        if status >= 200 && status != 204 && status != 304 {
            text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        text += "X-Upstream: \(name)\r\n" + extra + "\r\n"
        if status != 204 && status != 304 { text += body }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
    }

    /// Writes the generated body while the channel is writable; resumes on writability.
    private func writeBody(context: ChannelHandlerContext) {
        while remaining > 0 && context.channel.isWritable {
            let size = min(remaining, 16384)
            var buffer = context.channel.allocator.buffer(capacity: size + 16)
            if chunked { buffer.writeString(String(size, radix: 16) + "\r\n") }
            let start = written % TestUpstream.patternPeriod
            buffer.writeBytes(TestUpstream.patternTable[start..<(start + size)])
            if chunked { buffer.writeString("\r\n") }
            written += size
            remaining -= size
            counters.withLockedValue { $0.bodyBytesWritten += size }
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        context.flush()
        if remaining == 0 && busy {
            if chunked { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "0\r\n\r\n")), promise: nil) }
            if closeAfterBody {
                context.close(promise: nil)
                return
            }
            finishResponse(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && remaining > 0 { writeBody(context: context) }
    }

    private func finishResponse(context: ChannelHandlerContext) {
        busy = false
        while !busy, !queued.isEmpty {
            handle(queued.removeFirst(), context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += "\\u00" + String(scalar.value, radix: 16).leftPadded(2) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
