import HTTPWire
import NIOCore

/// What a filter's request-side hook decides about an exchange.
enum FilterVerdict {
    /// On to the next filter, and then to the upstream.
    case next
    /// Answer with a response the gateway makes (a preflight, a 429, an error).
    case respond(LocalResponse)
    /// Answer from the cache.
    case serve(CachedAnswer)
    /// Wait for something (Redis, another request's fetch, a replica): made with
    /// `Exchange.wait(for:then:)`; `Exchange.suspend` is the one place that parks an exchange
    /// and resumes it with what the filter then decides.
    case suspend(EventLoopFuture<FilterResumption>)
}

/// Which kind of response a head is being composed for; filters add their fields to each
/// kind as they see fit (the cache's `X-Cache` goes on upstream and cached answers only).
enum ResponseKind: Equatable {
    case upstream
    case cached
    case local
}

/// One concern on the request path (CORS, rate limits, the response cache, read-your-writes,
/// ...). A filter is compiled once from the configuration and shared by every exchange of the
/// routes it is configured on; what it knows about one request lives in `Exchange.filters`.
/// Each hook runs at its phase (see `Exchange+Phases.swift`), in chain order, and does nothing
/// unless the filter implements it. Hooks run on the exchange's event loop and never block.
protocol ExchangeFilter: AnyObject {
    /// The request phase: before any upstream is chosen.
    func request(_ exchange: Exchange) -> FilterVerdict
    /// A server was picked (or none was available): a filter may wait for a better candidate,
    /// after which the pick is made again (and this hook runs again).
    func picked(_ exchange: Exchange) -> FilterVerdict
    /// An attempt is about to lease a connection and send the request (once per attempt).
    func upstreamRequest(_ exchange: Exchange)
    /// The upstream's final response head, before it is composed for the client; a filter may
    /// hold it (its future completes when the head may go out).
    func responseHead(_ exchange: Exchange, _ head: HTTPHead) -> EventLoopFuture<Void>?
    /// A part of the upstream's response body, on its way to the client.
    func responseBody(_ exchange: Exchange, _ part: ByteBuffer)
    /// An answer in place of the upstream's: for a failure (`status` nil) or a 5xx, a stale
    /// entry (stale-if-error); for a 304 to a revalidation, the refreshed entry.
    func replacement(_ exchange: Exchange, for response: HTTPHead?) -> CachedAnswer?
    /// An upper bound of what `writeFields` writes.
    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int
    /// Fields every response of the exchange carries (`name: value\r\n` lines).
    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter)
    /// Whether a field of the upstream's head is left out (asked only when
    /// `Exchange.rewritesUpstreamFields` is set).
    func dropsUpstreamField(_ exchange: Exchange, _ name: UnsafeRawBufferPointer) -> Bool
    /// The exchange is over, however it ended (exactly once).
    func end(_ exchange: Exchange)
}

extension ExchangeFilter {
    func request(_ exchange: Exchange) -> FilterVerdict { .next }
    func picked(_ exchange: Exchange) -> FilterVerdict { .next }
    func upstreamRequest(_ exchange: Exchange) {}
    func responseHead(_ exchange: Exchange, _ head: HTTPHead) -> EventLoopFuture<Void>? { nil }
    func responseBody(_ exchange: Exchange, _ part: ByteBuffer) {}
    func replacement(_ exchange: Exchange, for response: HTTPHead?) -> CachedAnswer? { nil }
    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int { 0 }
    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {}
    func dropsUpstreamField(_ exchange: Exchange, _ name: UnsafeRawBufferPointer) -> Bool { false }
    func end(_ exchange: Exchange) {}
}
