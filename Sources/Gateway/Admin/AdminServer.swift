import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: `/health`, `/metrics`, `/admin/upstreams`. Small and off the data path,
/// so it uses NIOHTTP1 and Foundation's JSON freely.
struct AdminServer {
    let gateway: GatewayServer

    /// - Parameter descriptor: the listening socket (opened by the gateway, or inherited).
    func bind(group: EventLoopGroup, descriptor: CInt) async throws -> Channel {
        let gateway = self.gateway
        return try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(gateway: gateway))
                }
            }
            .withBoundSocket(descriptor: descriptor)
            .get()
    }
}

struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    /// More header fields (the dashboard's security policy, a 401's challenge).
    var headers: [(name: String, value: String)] = []

    static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) -> AdminResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return AdminResponse(status: status, contentType: "application/json", body: Array(data) + [0x0A])
    }

    static func error(_ status: HTTPResponseStatus, _ message: String) -> AdminResponse {
        json(["error": message], status: status)
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let gateway: GatewayServer
    private var head: HTTPRequestHead?

    init(gateway: GatewayServer) {
        self.gateway = gateway
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            let gateway = self.gateway
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let promise = context.eventLoop.makePromise(of: AdminResponse.self)
            promise.completeWithTask {
                await AdminRoutes(gateway: gateway).respond(to: head)
            }
            promise.futureResult.whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.write(response, keepAlive: keepAlive, headOnly: head.method == .HEAD, context: context)
            }
        }
    }

    private func write(_ response: AdminResponse, keepAlive: Bool, headOnly: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        if !headOnly {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
