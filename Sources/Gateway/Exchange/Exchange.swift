import Cache
import HTTPWire
import NIOCore
import Router

/// One request's life, from its head to its log line: who sent it, where it is routed, what its
/// filters made of it, the upstream attempt(s), and how it ended. It does not know which
/// protocol the request came in on: a downstream (`ExchangeDownstream`) hands it a head and
/// body parts and writes what it returns. Its phases are listed in `Exchange+Phases.swift`;
/// its decisions are `ExchangeStateMachine`'s. A class: it is handed around and inspected many
/// times per request, and a struct this size would be copied at every `if let`.
final class Exchange {
    /// A response head not yet written to the client.
    struct HeldHead {
        enum Reason {
            /// A filter prepares something the client must have with the head (a write's
            /// read-your-writes token, its cache invalidations): the upstream is paused.
            case followUp
            /// A retryable read whose body has not started: if the upstream dies now, the
            /// request can still go elsewhere, since the client has seen nothing.
            case firstBodyByte
        }

        let head: HTTPHead
        let reason: Reason
    }

    /// Where the answer came from, for stats and the access log.
    enum Source {
        case upstream
        case cache
        /// The gateway answered itself (an error, a preflight, a 429).
        case gateway
    }

    let loop: LoopContext
    /// The configuration this request started on: it finishes on it, whatever a reload does.
    let generation: LoopGeneration
    let runtime: GatewayRuntime
    let downstream: ExchangeDownstream
    let head: HTTPHead
    let path: NormalizedPath
    let requestID: RequestID
    /// The W3C trace this request is part of (nil: `tracing.enabled: false`, or a background
    /// refresh, which no client traces).
    let trace: TraceContext?
    let startedAt: NIODeadline
    /// The socket peer (X-Forwarded-For is appended with it; trusted proxies' headers count).
    let peer: ClientPeer
    /// The client as routing, limits and logs see it: the peer, or the address a trusted proxy
    /// forwarded.
    let client: IPAddress?
    /// The client as text: the peer's own (made once per connection) unless a trusted proxy
    /// forwarded another address, made when a filter or the log first asks.
    private(set) lazy var clientText: String = client.map { $0 == peer.address ? peer.text : $0.description } ?? peer.text
    /// Who the request comes from (`identity:`, hashed), for per-user cache entries, tokens and
    /// `key: identity` limits: worked out once, when a filter first asks — after auth, whose
    /// verified claims come first.
    private(set) lazy var identity: String? = runtime.identity.identity(of: head, client: clientText, token: filters.auth)
    var decision: Router.Decision
    /// The route's filters.
    let chain: FilterChain
    var machine: ExchangeStateMachine
    /// What each filter knows about this request.
    var filters = FilterState()
    /// A filter rewrites the upstream's fields (the composer asks the chain about each one).
    var rewritesUpstreamFields = false
    /// A fetch that fills the cache: the client's conditional headers are not forwarded.
    var dropsConditionals = false
    /// A revalidation's own conditional headers (the stored entry's validators).
    var revalidationConditionals: [(String, String)] = []
    /// A request the gateway makes itself (a cache refresh): no client, no access log line.
    let isBackground: Bool
    /// The path has an escaped slash and `escaped_slashes: reject`.
    private(set) var pathRefused = false
    /// The protocol the client asks to switch to (`Upgrade`, e.g. `websocket`), when its route
    /// allows upgrades: forwarded, and after a 101 the exchange is a tunnel (`Exchange+Tunnel`).
    let upgrade: String?

    // MARK: The upstream attempt

    private(set) var pool: PoolRuntime?
    private(set) var server: UpstreamServer?
    var upstream: UpstreamConnection?
    /// The current attempt counts as in flight on `server` (the balancer's view).
    var attemptInFlight = false
    var heldHead: HeldHead?
    /// The current attempt's upstream connection reached end of input (reset per attempt).
    var upstreamEOF = false
    /// The upstream's whole response arrived (what the cache may store).
    var upstreamResponseComplete = false
    /// The write's WAL position, once a filter asked for it (`Exchange+WritePosition`).
    var writePositionFuture: EventLoopFuture<LSN?>?

    // MARK: Progress and outcome

    /// Parked in `suspend`.
    var suspended = false
    /// Was parked at least once: `startedAt` no longer tells the time.
    var hasWaited = false
    /// Set once, by `finish`: nothing may happen to the exchange after.
    var ended = false
    var status = 0
    var source = Source.upstream
    var requestBodyBytes = 0
    var responseBodyBytes = 0

    /// The body read before the exchange began (`request_buffering`).
    let bufferedBody: BufferedRequestBody?

    /// Body bytes are still to come from the client: its connection cannot carry another
    /// request after an early answer.
    var requestBodyPendingOnClient: Bool { machine.requestBodyUnread && !(bufferedBody?.complete ?? false) }

    /// Identify: the request ID, the client address, the route and region, the route's filters.
    /// `startedAt`: when the downstream began on the request (its head's arrival), if it read
    /// the clock already.
    init(head: HTTPHead, hasBody: Bool, downstream: ExchangeDownstream, loop: LoopContext, peer: ClientPeer,
         bufferedBody: BufferedRequestBody? = nil, startedAt: NIODeadline = .now()) {
        self.bufferedBody = bufferedBody
        requestBodyBytes = bufferedBody?.bytes ?? 0
        self.loop = loop
        generation = loop.current
        runtime = generation.runtime
        self.downstream = downstream
        self.head = head
        self.peer = peer
        isBackground = false
        self.startedAt = startedAt
        requestID = RequestID.of(head, generator: &loop.requestIDs)
        let tracing = runtime.config.tracing
        trace = tracing.enabled
            ? TraceContext.of(head, requestID: requestID, sampled: tracing.sampled, generator: &loop.requestIDs) : nil
        client = Self.client(of: head, peer: peer.address, trusted: peer.trusted, runtime: runtime)
        let rawPath = head.path
        let escapedSlashes = runtime.config.escapedSlashes
        pathRefused = escapedSlashes == .reject && NormalizedPath.hasEscapedSlash(rawPath[...])
        path = Self.routedPath(rawPath, runtime: runtime)
        decision = runtime.router.route(
            Router.Request(method: head.method, path: path, host: head.host, client: client, headerTrusted: peer.trusted),
            headers: head)
        chain = runtime.filterChains.chain(forRoute: decision.route)
        upgrade = head.connectionUpgrade ? Self.upgrade(of: head, route: decision.route, runtime: runtime) : nil
        machine = ExchangeStateMachine(method: head.method, requestHasBody: hasBody, maxRetries: runtime.config.retries.attempts,
                                       upgradeRequested: upgrade != nil)
    }

    /// The client as routing, limits and logs see it: the peer, or, from a trusted proxy, the
    /// address it forwarded (`/admin/explain` resolves its `client=` the same way).
    static func client(of head: HTTPHead, peer: IPAddress?, trusted: Bool, runtime: GatewayRuntime) -> IPAddress? {
        guard trusted, let peer else { return peer }
        return ClientAddress.resolve(peer: peer, trusted: runtime.trustedProxies, forwardedFor: head.combinedValue(.xForwardedFor),
                                     forwarded: head.firstValue(.forwarded))
    }

    /// The normalized path a request is routed by (`escaped_slashes: unescape` decodes `%2F`).
    static func routedPath(_ rawPath: String, runtime: GatewayRuntime) -> NormalizedPath {
        NormalizedPath(rawPath, unescapingSlashes: runtime.config.escapedSlashes == .unescape)
    }

    /// An HTTP/1.1 GET without a body asking to switch protocols, on a route that allows it
    /// (RFC 9110 §7.8; RFC 6455 §4.1 for WebSocket).
    private static func upgrade(of head: HTTPHead, route: Int?, runtime: GatewayRuntime) -> String? {
        guard head.method == .get, head.minorVersion == 1, head.framing == .none,
              let value = head.firstValue(.upgrade), !value.isEmpty else { return nil }
        if let route, !runtime.config.routes[route].upgrade { return nil }
        return value
    }

    /// The same request, made again by the gateway on its own behalf (a cache refresh).
    init(repeating original: Exchange, downstream: ExchangeDownstream) {
        bufferedBody = nil
        loop = original.loop
        generation = original.generation
        runtime = original.runtime
        self.downstream = downstream
        head = original.head
        peer = original.peer
        isBackground = true
        startedAt = .now()
        requestID = loop.requestIDs.make()
        trace = nil
        client = original.client
        path = original.path
        decision = original.decision
        decision.requirement = .any
        chain = original.chain
        upgrade = nil
        machine = ExchangeStateMachine(method: original.head.method, requestHasBody: false,
                                       maxRetries: runtime.config.retries.attempts)
        // The refresh goes upstream as the same user (claim headers).
        filters.auth = original.filters.auth
    }

    var responseTimeout: TimeAmount { server?.responseTimeout ?? .seconds(60) }

    /// The attempt's pool and server, chosen by the router (again on a retry).
    func target(pool poolIndex: Int, server serverIndex: Int) {
        pool = runtime.pools[poolIndex]
        server = runtime.servers[serverIndex]
    }
}

/// The socket peer of a client connection.
struct ClientPeer {
    var address: IPAddress?
    var text = "-"
    /// In `trusted_proxies`: its forwarding and region headers are believed.
    var trusted = false
    /// The connection's TLS session once its handshake completed; nil on cleartext.
    var tls: TLSSession?
    /// It came in on a `redirect_https` listener: every request is sent to this HTTPS port.
    var redirectHTTPS: Int?
    /// An HTTP/2 stream (the access log's `proto=h2`).
    var http2 = false
}

/// What the filters know about one exchange; each filter reads and writes its own field.
struct FilterState {
    /// CORS: the policy's headers for this request's origin.
    var cors: [(String, String)]?
    /// Auth: the request's verified token (nil: anonymous, or a route without auth).
    var auth: VerifiedToken?
    /// Rate limits: the fields every response gets.
    var rateLimit: RateLimitFields?
    /// Read-your-writes: what the client's writes demand, and how it was met.
    var readYourWrites: ReadYourWrites?
    /// The response cache: the request as the cache sees it, and the response being stored.
    var cache: CacheRequest?
    var cacheCapture: CacheCapture?
}
