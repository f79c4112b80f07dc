import HTTPWire
import NIOCore
import Router

/// CORS on the routes that name a policy (`cors:`; the policy logic is the Router's
/// `CORSPolicy`): a preflight is answered here and never forwarded; every other response of a
/// request with an `Origin` gets the policy's headers for that origin (none when the origin is
/// refused), and the upstream's own `Access-Control-*` fields are dropped, so the policy is
/// the only one the browser sees.
final class CORSFilter: ExchangeFilter, Sendable {
    let policy: CORSPolicy

    init(policy: CORSPolicy) {
        self.policy = policy
    }

    func request(_ exchange: Exchange) -> FilterVerdict {
        let head = exchange.head
        guard let origin = head.firstValue(.origin) else { return .next }
        if head.method == .options, let requested = head.firstValue(named: "access-control-request-method") {
            var headers: [(String, String)] = []
            if case .allowed(let allowed) = policy.preflight(
                origin: origin, requestMethod: requested, requestHeaders: head.firstValue(named: "access-control-request-headers")) {
                headers = allowed
            }
            return .respond(LocalResponse(status: 204, headers: headers))
        }
        exchange.filters.cors = policy.responseHeaders(origin: origin)
        exchange.rewritesUpstreamFields = true
        return .next
    }

    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int {
        guard let headers = exchange.filters.cors else { return 0 }
        return headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
    }

    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {
        guard let headers = exchange.filters.cors else { return }
        for (name, value) in headers { writer.header(name, value) }
    }

    func dropsUpstreamField(_ exchange: Exchange, _ name: UnsafeRawBufferPointer) -> Bool {
        exchange.filters.cors != nil && Self.isCORSHeader(name)
    }

    /// `Access-Control-Allow-*`, `Access-Control-Expose-Headers`, `Access-Control-Max-Age`.
    static func isCORSHeader(_ name: UnsafeRawBufferPointer) -> Bool {
        let prefix: StaticString = "access-control-"
        guard name.count > prefix.utf8CodeUnitCount else { return false }
        for i in 0..<prefix.utf8CodeUnitCount where ASCII.lowercased(name[i]) != prefix.utf8Start[i] { return false }
        return true
    }
}
