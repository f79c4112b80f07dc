import HTTPWire

/// A route's `response_headers:`, added to every response of the route — forwarded, cached,
/// or the gateway's own (errors and 429s too) — as nginx's `add_header ... always` or Envoy's
/// `response_headers_to_add` do; `Strict-Transport-Security` or `X-Content-Type-Options` for an
/// API, say. The lines are encoded once, at load; each response copies them.
final class ResponseHeadersFilter: ExchangeFilter, Sendable {
    /// `Name: value\r\n` for every header, in file order.
    let lines: [UInt8]

    init(headers: [(name: String, value: String)]) {
        var lines: [UInt8] = []
        for (name, value) in headers {
            lines += Array(name.utf8) + Array(": ".utf8) + Array(value.utf8) + [13, 10]
        }
        self.lines = lines
    }

    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int {
        lines.count
    }

    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {
        lines.withUnsafeBytes { writer.write($0) }
    }
}
