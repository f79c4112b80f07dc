import Cache
import HTTPWire
import NIOCore
import Router

/// Stale-while-revalidate's background fetch: a GET the gateway sends by itself, on a pooled
/// upstream connection of the loop, whose response goes only into the cache. Clients are
/// answered from the stale entry meanwhile.
final class CacheRefresh: UpstreamLeaseRequester, UpstreamConnectionOwner {
    private let loop: LoopContext
    private let head: HTTPHead
    private let server: UpstreamServer
    private let decision: Router.Decision
    private let capture: CacheCapture
    private let forwarding: ForwardingContext
    private var connection: UpstreamConnection?
    private var timer: Scheduled<Void>?
    private var done = false

    private init(loop: LoopContext, head: HTTPHead, server: UpstreamServer, decision: Router.Decision, capture: CacheCapture,
                 forwarding: ForwardingContext) {
        self.loop = loop
        self.head = head
        self.server = server
        self.decision = decision
        self.capture = capture
        self.forwarding = forwarding
    }

    static func start(_ request: CacheRequest, head: HTTPHead, routed: Router.Request, loop: LoopContext, peerAddress: String, peerTrusted: Bool) {
        let runtime = loop.runtime
        let decision = runtime.router.decide(routed, headers: head, state: loop.routingState, balancer: &loop.balancer)
        guard let pool = decision.pool, let serverIndex = decision.server else {
            if let id = request.coalesceID { runtime.cache?.store.coalescer.finish(id, entry: nil) }
            return
        }
        let capture = CacheCapture(request: request, fetchStartedAt: CacheRuntime.unixMilliseconds(),
                                   lsn: loop.routingState.positionLSN[pool]?.value ?? 0, routeHasCORS: runtime.router.cors(for: decision) != nil)
        let forwarding = ForwardingContext(
            peerAddress: peerAddress, peerIsTrusted: peerTrusted, requestID: loop.requestIDs.make(),
            extraHeaders: runtime.routingHeaders[decision.region][decision.toWritePool ? 1 : 0], dropConditionals: true)
        let server = runtime.servers[serverIndex]
        let refresh = CacheRefresh(loop: loop, head: head, server: server, decision: decision, capture: capture, forwarding: forwarding)
        loop.balancer.inFlight[serverIndex] += 1
        refresh.timer = loop.eventLoop.assumeIsolated().scheduleTask(in: server.acquireTimeout + server.responseTimeout) {
            refresh.end(succeeded: false)
        }
        switch loop.connectionPool(for: server).lease(for: refresh) {
        case .ready(let connection): refresh.attach(connection)
        case .pending: break
        }
    }

    func leaseSucceeded(_ connection: UpstreamConnection) {
        guard !done else {
            loop.connectionPool(for: connection.server).release(connection, reusable: true)
            return
        }
        attach(connection)
    }

    func leaseFailed(_ failure: UpstreamFailure) {
        end(succeeded: false)
    }

    private func attach(_ connection: UpstreamConnection) {
        self.connection = connection
        connection.owner = self
        connection.beginRequest(respondingToHead: false)
        connection.headScratch.clear()
        RequestHeadWriter.write(head, context: forwarding, chunkedBody: false, into: &connection.headScratch)
        connection.write(connection.headScratch)
        connection.flush()
        if connection.parser.bufferedBytes > 0 { pump(connection) }
    }

    func upstreamHasData(_ connection: UpstreamConnection) { pump(connection) }
    func upstreamReadComplete(_ connection: UpstreamConnection) {}
    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {}

    func upstreamClosed(_ connection: UpstreamConnection) {
        if case .end? = try? connection.parser.finish() {
            end(succeeded: true)
        } else {
            end(succeeded: false)
        }
    }

    private func pump(_ connection: UpstreamConnection) {
        while !done {
            let event: HTTP1Parser.Event
            do { event = try connection.parser.next() } catch {
                return end(succeeded: false)
            }
            switch event {
            case .head(let response):
                guard response.status >= 200 else { continue }
                if !capture.admit(response, requestHead: head) { return end(succeeded: false) }
            case .body(let part):
                if !capture.append(part) { return end(succeeded: false) }
            case .end:
                return end(succeeded: true)
            case .needMoreData:
                return
            }
        }
    }

    private func end(succeeded: Bool) {
        guard !done else { return }
        done = true
        timer?.cancel()
        loop.balancer.inFlight[server.id] -= 1
        if let connection {
            loop.connectionPool(for: server).release(connection, reusable: succeeded)
        } else {
            loop.connectionPool(for: server).cancel(self)
        }
        capture.finish(succeeded: succeeded, loop: loop)
    }
}
