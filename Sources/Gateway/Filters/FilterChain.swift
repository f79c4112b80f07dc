import HTTPWire
import NIOCore

/// The filters of one route, in the order their hooks run. Compiled once per route
/// (`FilterChains`); only the filters a route is configured with are in its chain, so a route
/// without any costs nothing per request.
struct FilterChain: Sendable {
    let filters: [Filter]

    var count: Int { filters.count }

    // MARK: Request side (one filter at a time: the exchange may stop or wait between two)

    func request(at position: Int, _ exchange: Exchange) -> FilterVerdict {
        struct Hook: FilterHook {
            let exchange: Exchange
            var verdict = FilterVerdict.next
            mutating func run<F: ExchangeFilter>(_ filter: F) { verdict = filter.request(exchange) }
        }
        var hook = Hook(exchange: exchange)
        filters[position].apply(&hook)
        return hook.verdict
    }

    func picked(at position: Int, _ exchange: Exchange) -> FilterVerdict {
        struct Hook: FilterHook {
            let exchange: Exchange
            var verdict = FilterVerdict.next
            mutating func run<F: ExchangeFilter>(_ filter: F) { verdict = filter.picked(exchange) }
        }
        var hook = Hook(exchange: exchange)
        filters[position].apply(&hook)
        return hook.verdict
    }

    // MARK: Upstream and response side (every filter)

    func upstreamRequest(_ exchange: Exchange) {
        struct Hook: FilterHook {
            let exchange: Exchange
            mutating func run<F: ExchangeFilter>(_ filter: F) { filter.upstreamRequest(exchange) }
        }
        var hook = Hook(exchange: exchange)
        for filter in filters { filter.apply(&hook) }
    }

    /// The holds the filters put on a response head (none on most responses).
    func responseHead(_ exchange: Exchange, _ head: HTTPHead) -> [EventLoopFuture<Void>] {
        struct Hook: FilterHook {
            let exchange: Exchange
            let head: HTTPHead
            var holds: [EventLoopFuture<Void>] = []
            mutating func run<F: ExchangeFilter>(_ filter: F) {
                if let hold = filter.responseHead(exchange, head) { holds.append(hold) }
            }
        }
        var hook = Hook(exchange: exchange, head: head)
        for filter in filters { filter.apply(&hook) }
        return hook.holds
    }

    func responseBody(_ exchange: Exchange, _ part: ByteBuffer) {
        struct Hook: FilterHook {
            let exchange: Exchange
            let part: ByteBuffer
            mutating func run<F: ExchangeFilter>(_ filter: F) { filter.responseBody(exchange, part) }
        }
        var hook = Hook(exchange: exchange, part: part)
        for filter in filters { filter.apply(&hook) }
    }

    func replacement(_ exchange: Exchange, for response: HTTPHead?) -> CachedAnswer? {
        struct Hook: FilterHook {
            let exchange: Exchange
            let response: HTTPHead?
            var answer: CachedAnswer?
            mutating func run<F: ExchangeFilter>(_ filter: F) {
                if answer == nil { answer = filter.replacement(exchange, for: response) }
            }
        }
        var hook = Hook(exchange: exchange, response: response)
        for filter in filters { filter.apply(&hook) }
        return hook.answer
    }

    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int {
        struct Hook: FilterHook {
            let exchange: Exchange
            let kind: ResponseKind
            var total = 0
            mutating func run<F: ExchangeFilter>(_ filter: F) { total += filter.fieldsLength(exchange, kind) }
        }
        var hook = Hook(exchange: exchange, kind: kind)
        for filter in filters { filter.apply(&hook) }
        return hook.total
    }

    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {
        struct Hook: FilterHook {
            let exchange: Exchange
            let kind: ResponseKind
            var writer: RawHeadWriter
            mutating func run<F: ExchangeFilter>(_ filter: F) { filter.writeFields(exchange, kind, into: &writer) }
        }
        var hook = Hook(exchange: exchange, kind: kind, writer: writer)
        for filter in filters { filter.apply(&hook) }
        writer = hook.writer
    }

    func dropsUpstreamField(_ exchange: Exchange, _ name: UnsafeRawBufferPointer) -> Bool {
        struct Hook: FilterHook {
            let exchange: Exchange
            let name: UnsafeRawBufferPointer
            var drops = false
            mutating func run<F: ExchangeFilter>(_ filter: F) {
                if !drops { drops = filter.dropsUpstreamField(exchange, name) }
            }
        }
        var hook = Hook(exchange: exchange, name: name)
        for filter in filters { filter.apply(&hook) }
        return hook.drops
    }

    func end(_ exchange: Exchange) {
        struct Hook: FilterHook {
            let exchange: Exchange
            mutating func run<F: ExchangeFilter>(_ filter: F) { filter.end(exchange) }
        }
        var hook = Hook(exchange: exchange)
        for filter in filters { filter.apply(&hook) }
    }
}
