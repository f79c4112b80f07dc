import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An issuer's JWKS endpoint on loopback (`GET /jwks.json`): the key set it serves can be
/// changed (rotation) or the endpoint made to fail (an issuer that is down); it counts fetches.
public final class KeySetServer: @unchecked Sendable {
    private struct State {
        var body = #"{"keys":[]}"#
        /// Answered instead of the set while set (e.g. 503).
        var failure: Int?
        var fetches = 0
    }

    private let state = NIOLockedValueBox(State())
    private var channel: Channel?
    public private(set) var port = 0

    public init() {}

    public var url: String { "http://127.0.0.1:\(port)/jwks.json" }
    public var fetches: Int { state.withLockedValue { $0.fetches } }

    public func serve(_ body: String) { state.withLockedValue { $0.body = body } }
    public func fail(with status: Int?) { state.withLockedValue { $0.failure = status } }

    public func start() async throws {
        let state = self.state
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        port = channel!.localAddress!.port!
    }

    public func stop() async {
        try? await channel?.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: NIOLockedValueBox<State>
        private var path = ""

        init(state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): path = head.uri
            case .body: break
            case .end:
                let (status, body): (HTTPResponseStatus, String) = state.withLockedValue { state in
                    guard path == "/jwks.json" else { return (.notFound, "{}") }
                    state.fetches += 1
                    if let failure = state.failure { return (HTTPResponseStatus(statusCode: failure), "{}") }
                    return (.ok, state.body)
                }
                var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(body.utf8.count))])
                headers.add(name: "Cache-Control", value: "max-age=60")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
