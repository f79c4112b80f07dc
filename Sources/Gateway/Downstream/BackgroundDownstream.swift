import HTTPWire
import NIOCore

/// The client side of an exchange nobody waits for: stale-while-revalidate's refresh, whose
/// response only goes into the cache (its filters store it). It discards what the exchange
/// sends, and keeps the exchange's deadline on the loop's sweeper until the exchange ends.
final class BackgroundDownstream: ExchangeDownstream, TimedConnection {
    private let loop: LoopContext
    private var exchange: Exchange?
    private var waitingFor = ExchangeStateMachine.Wait.upstreamConnection
    private(set) var deadline = NIODeadline.distantFuture

    /// Starts `exchange` (made with this downstream) at its upstream phase.
    static func run(_ make: (BackgroundDownstream) -> Exchange, on loop: LoopContext) {
        let downstream = BackgroundDownstream(loop: loop)
        let exchange = make(downstream)
        downstream.exchange = exchange
        loop.sweeper.add(downstream)
        exchange.forwardUpstream()
    }

    private init(loop: LoopContext) {
        self.loop = loop
    }

    var isWritable: Bool { true }
    func sendHead(_ head: ResponseHead, for exchange: Exchange) {}
    func sendInterim(_ head: HTTPHead) {}
    func sendBody(_ part: ByteBuffer) {}
    func flush() {}
    func requestBodyWanted(now: NIODeadline, restartTimeout: Bool) {}
    func responseBlocked() {}

    /// Refreshes never ask for upgrades.
    func beginTunnel() -> ByteBuffer { ByteBuffer() }

    func exchangeEnded(_ exchange: Exchange, _ end: ExchangeEnd) {
        self.exchange = nil
        deadline = .distantFuture
        loop.sweeper.remove(self)
    }

    func arm(_ wait: ExchangeStateMachine.Wait, timeout: TimeAmount, now: NIODeadline) {
        waitingFor = wait
        deadline = now + timeout
    }

    func exchangeSuspended() {
        deadline = .distantFuture
    }

    func exchangeResumed() {}

    func deadlineExpired(now: NIODeadline) {
        deadline = .distantFuture
        exchange?.deadlineExpired(waitingFor)
    }
}
