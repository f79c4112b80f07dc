import HTTPWire
import NIOCore

/// What a response head is made from: the upstream's head, a cached entry, or the gateway's
/// own answer.
enum ResponseHead {
    case upstream(HTTPHead)
    case cached(CachedAnswer)
    case local(LocalResponse)
}

/// How an exchange ended, for the client side.
enum ExchangeEnd: Equatable {
    /// A whole response went out.
    case completed
    /// The response was cut short: the client must learn it from a closed connection.
    case aborted
    /// The client side itself gave up on the exchange (left, timed out, shut down).
    case abandoned
}

/// The client side of an exchange: an HTTP/1.1 connection today (`HTTP1Connection`), an
/// HTTP/2 stream next, or nobody at all (`BackgroundDownstream`, a cache refresh). The
/// exchange never learns which: it hands over heads and body parts and says when it waits, and
/// the downstream frames them for its protocol, keeps the deadlines, and reads the request
/// body when asked.
protocol ExchangeDownstream: AnyObject {
    /// The client can take more response bytes now.
    var isWritable: Bool { get }
    /// A final response head (with the body of cached and local answers).
    func sendHead(_ head: ResponseHead, for exchange: Exchange)
    /// A 1xx interim response from the upstream.
    func sendInterim(_ head: HTTPHead)
    /// A part of an upstream response's body.
    func sendBody(_ part: ByteBuffer)
    func flush()
    /// The exchange is over (it has logged itself); the downstream finishes the response and
    /// decides what the connection does next.
    func exchangeEnded(_ exchange: Exchange, _ end: ExchangeEnd)
    /// The exchange waits for `wait`: its timeout runs from now.
    func arm(_ wait: ExchangeStateMachine.Wait, timeout: TimeAmount, now: NIODeadline)
    /// The exchange can take request body now (an upstream took its head, or can take more).
    func requestBodyWanted(now: NIODeadline, restartTimeout: Bool)
    /// The exchange parks (a filter waits for something) or resumes: no deadline meanwhile,
    /// each wait has its own limit.
    func exchangeSuspended()
    func exchangeResumed()
    /// The client is not reading: the exchange stops reading the upstream until it does.
    func responseBlocked()
    /// A 101 went out: the connection carries the exchange's tunnel from now on (its bytes go to
    /// `Exchange.tunnelToUpstream`). Returns what the client sent after its request head.
    func beginTunnel() -> ByteBuffer
}
