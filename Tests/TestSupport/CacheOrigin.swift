import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An origin whose resources change when written, for cache tests: every response says which
/// version of its resource it shows and how many times the origin has served it, so a test
/// can tell a cached answer from a fresh one.
///
/// - `GET /items/{id}`: `{id} v{version} n{served} user={Authorization}` with `ETag: "v{version}"`;
///   with `cond=1`, a 304 when `If-None-Match` names the current version (otherwise conditional
///   requests are ignored, as many origins do).
///   Query options: `cc=` (the response's Cache-Control), `gcc=` (a Gateway-Cache-Control), `cookie=1` (a Set-Cookie),
///   `status=` (the status), `delay=` (milliseconds before answering), `size=` (a binary
///   body of that many pattern bytes instead), `vary=` (a Vary header).
/// - `PUT /items/{id}` (and any other write): the item's version goes up; `status=` sets the
///   answer's status (a failed write changes nothing).
/// - `failing = true`: every GET gets a 503.
public final class CacheOrigin: @unchecked Sendable {
    public struct State: Sendable {
        public var versions: [String: Int] = [:]
        public var served: [String: Int] = [:]
        public var requests = 0
        /// Conditional requests answered 304 (the cache's copy was still current).
        public var notModified = 0
        public var failing = false
        /// Request headers of the last request.
        public var lastHeaders: [String: String] = [:]
    }

    private let box = NIOLockedValueBox(State())
    private var channel: Channel?
    public private(set) var port = 0
    public var url: String { "http://127.0.0.1:\(port)" }

    public init() {}

    public var state: State { box.withLockedValue { $0 } }
    public func served(_ id: String) -> Int { box.withLockedValue { $0.served[id] ?? 0 } }
    public var failing: Bool {
        get { box.withLockedValue { $0.failing } }
        set { box.withLockedValue { $0.failing = newValue } }
    }

    public func start() async throws {
        let box = self.box
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CacheOriginHandler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel = channel
        port = channel.localAddress!.port!
    }

    public func stop() async {
        try? await channel?.close()
    }
}

private final class CacheOriginHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let box: NIOLockedValueBox<CacheOrigin.State>
    private var head: HTTPRequestHead?

    init(box: NIOLockedValueBox<CacheOrigin.State>) {
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        let path = String(parts.first ?? "")
        var options: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                options[String(kv[0])] = kv.count > 1 ? String(kv[1]).removingPercentEscapes() : ""
            }
        }
        let id = String(path.split(separator: "/").last ?? "")
        let status = options["status"].flatMap(Int.init) ?? 200
        let isWrite = head.method != .GET && head.method != .HEAD
        var headers = HTTPHeaders()
        var body = ByteBuffer()
        let responseStatus: Int = box.withLockedValue { state in
            state.requests += 1
            state.lastHeaders = Dictionary(head.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
            if isWrite {
                if (200..<300).contains(status) { state.versions[id, default: 1] += 1 }
                body.writeString("{\"version\":\(state.versions[id, default: 1])}")
                return status
            }
            if state.failing {
                body.writeString("{\"error\":\"failing\"}")
                return 503
            }
            let version = state.versions[id, default: 1]
            headers.add(name: "ETag", value: "\"v\(version)\"")
            if options["cond"] != nil, head.headers.first(name: "if-none-match") == "\"v\(version)\"" {
                state.notModified += 1
                return 304
            }
            state.served[id, default: 0] += 1
            if let size = options["size"].flatMap(Int.init) {
                body.writeBytes(TestUpstream.patternTable[0..<min(size, TestUpstream.patternTable.count)])
                if size > TestUpstream.patternTable.count {
                    for i in TestUpstream.patternTable.count..<size { body.writeInteger(TestUpstream.patternByte(i)) }
                }
            } else {
                body.writeString("\(id) v\(version) n\(state.served[id]!) user=\(head.headers.first(name: "authorization") ?? "-")")
            }
            return status
        }
        if let cc = options["cc"] { headers.add(name: "Cache-Control", value: cc) }
        if let gcc = options["gcc"] { headers.add(name: "Gateway-Cache-Control", value: gcc) }
        if options["cookie"] != nil { headers.add(name: "Set-Cookie", value: "session=abc") }
        if let vary = options["vary"] { headers.add(name: "Vary", value: vary) }
        if responseStatus != 304 { headers.add(name: "Content-Length", value: String(body.readableBytes)) }
        let send = {
            let response = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: responseStatus), headers: headers)
            context.write(self.wrapOutboundOut(.head(response)), promise: nil)
            if head.method != .HEAD && responseStatus != 304 { context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
        if let delay = options["delay"].flatMap(Int64.init) {
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) { send() }
        } else {
            send()
        }
    }
}

extension String {
    /// `%2C` and the like, for option values in a query.
    func removingPercentEscapes() -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(self.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
