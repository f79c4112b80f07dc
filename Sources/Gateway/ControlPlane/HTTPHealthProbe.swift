import HTTPWire
import NIOCore
import NIOPosix

/// One active check: a new connection, `GET path`, the status of the answer, within `timeout`
/// (connect included). A new connection each time, as HAProxy's `httpchk` does: the check
/// proves that the server accepts connections, not just that an old one still works.
enum HTTPHealthProbe {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func check(_ server: UpstreamServer, path: String, timeout: TimeAmount, on eventLoop: EventLoop) -> EventLoopFuture<Int> {
        let promise = eventLoop.makePromise(of: Int.self)
        let request = "GET \(path) HTTP/1.1\r\nHost: \(server.authority)\r\nUser-Agent: gateway-health-check\r\nConnection: close\r\n\r\n"
        return OneShotRequest.send(request, promise: promise, timeout: timeout, on: eventLoop,
                                   connect: { $0.connect(to: server.address) }, target: server.authority) { channel in
            // The same TLS settings as requests: a check proves what they will find.
            try server.addTLSHandler(to: channel)
            try channel.pipeline.syncOperations.addHandler(ProbeHandler(promise: promise))
        }
    }

    final class ProbeHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private var parser = HTTP1Parser(kind: .response, maxHeadBytes: 64 * 1024, maxHeaderCount: 256)
        private let promise: EventLoopPromise<Int>

        init(promise: EventLoopPromise<Int>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            parser.append(unwrapInboundIn(data))
            do {
                while true {
                    switch try parser.next() {
                    case .head(let head) where head.status >= 200:
                        promise.succeed(head.status)
                        return
                    case .head, .body, .end:
                        continue
                    case .needMoreData:
                        return
                    }
                }
            } catch {
                promise.fail(Failure(description: "invalid response: \(error)"))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(Failure(description: "closed before answering"))
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            promise.fail(Failure(description: "\(error)"))
            context.close(promise: nil)
        }
    }
}
