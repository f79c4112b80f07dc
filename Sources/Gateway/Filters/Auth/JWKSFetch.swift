import HTTPWire
import NIOCore
import NIOPosix

/// One fetch of a JWKS document: a new connection (TLS for https://, verified as the issuer's
/// `tls:` says), `GET path`, the body of a 200, within `timeout` (connect included). Host names
/// are looked up by NIO off the event loop.
enum JWKSFetch {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Key sets are small; a larger answer is not one.
    static let maximumBytes = 1 << 20

    static func get(_ url: JWKSURL, tls: UpstreamTLSMaterial?, timeout: TimeAmount, on eventLoop: EventLoop) -> EventLoopFuture<[UInt8]> {
        if url.secure && tls == nil {
            return eventLoop.makeFailedFuture(Failure(description: "no TLS context for \(url) (load the configuration with ConfigLoader)"))
        }
        let promise = eventLoop.makePromise(of: [UInt8].self)
        let host = url.authority.host
        let defaultPort = url.secure ? 443 : 80
        let hostField = url.authority.port == defaultPort ? host : "\(host.contains(":") ? "[\(host)]" : host):\(url.authority.port)"
        let request = "GET \(url.path) HTTP/1.1\r\nHost: \(hostField)\r\nUser-Agent: gateway-jwks\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        return OneShotRequest.send(request, promise: promise, timeout: timeout, on: eventLoop,
                                   connect: { $0.connect(host: host, port: url.authority.port) },
                                   target: "\(host):\(url.authority.port)") { channel in
            if url.secure, let tls {
                try tls.addHandler(to: channel, serverName: tls.serverName(forHost: host))
            }
            try channel.pipeline.syncOperations.addHandler(BodyHandler(promise: promise))
        }
    }

    /// Collects a 200's body; any other status, an oversized body or a cut one fails.
    final class BodyHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private var parser = HTTP1Parser(kind: .response, maxHeadBytes: 64 * 1024, maxHeaderCount: 256)
        private var body: [UInt8] = []
        private var status = 0
        private let promise: EventLoopPromise<[UInt8]>

        init(promise: EventLoopPromise<[UInt8]>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            parser.append(unwrapInboundIn(data))
            drain { try parser.next() }
        }

        func channelInactive(context: ChannelHandlerContext) {
            drain { try parser.finish() }
            promise.fail(Failure(description: "closed before a whole answer"))
        }

        private func drain(_ next: () throws -> HTTP1Parser.Event) {
            do {
                while true {
                    switch try next() {
                    case .head(let head):
                        if head.status >= 200 { status = head.status }
                    case .body(let part):
                        guard body.count + part.readableBytes <= JWKSFetch.maximumBytes else {
                            return promise.fail(Failure(description: "the key set is larger than \(JWKSFetch.maximumBytes) bytes"))
                        }
                        body += part.readableBytesView
                    case .end:
                        guard status != 0 else { continue }
                        guard status == 200 else { return promise.fail(Failure(description: "answered \(status)")) }
                        return promise.succeed(body)
                    case .needMoreData:
                        return
                    }
                }
            } catch {
                promise.fail(Failure(description: "invalid response: \(error)"))
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            promise.fail(Failure(description: "\(error)"))
            context.close(promise: nil)
        }
    }
}
