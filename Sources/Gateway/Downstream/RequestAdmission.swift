import HTTPWire

/// What both downstreams (an HTTP/1.1 connection, an HTTP/2 stream) decide about a request
/// before its exchange starts: whether it is refused outright, and whether its body is read
/// whole first (`limits.request_buffering`).
enum RequestAdmission {
    struct Refusal: Equatable {
        var status: Int
        var message: String
        var errorKind: String
    }

    /// A declared body over `limits.max_body_size` (413), or CONNECT (405: no tunnels to
    /// arbitrary hosts).
    static func refusal(of head: HTTPHead, maxBodyBytes: Int) -> Refusal? {
        if case .length(let length) = head.framing, length > maxBodyBytes { return bodyTooLarge(maxBodyBytes) }
        if head.method == .connect { return Refusal(status: 405, message: "CONNECT is not supported", errorKind: "bad_request") }
        return nil
    }

    /// A body that turned out larger than `limits.max_body_size` while it was read.
    static func bodyTooLarge(_ maxBodyBytes: Int) -> Refusal {
        Refusal(status: 413, message: "request body larger than \(maxBodyBytes) bytes", errorKind: "body_too_large")
    }

    /// A small body is read whole before the exchange starts (so a retry can send it again and
    /// no upstream connection waits on a slow client) — not for `Expect: 100-continue`: that
    /// client waits for a 100 before it sends anything.
    static func buffersBody(_ head: HTTPHead, hasBody: Bool, requestBufferingBytes: Int) -> Bool {
        hasBody && requestBufferingBytes > 0 && !head.expectsContinue && (head.contentLength ?? 0) <= requestBufferingBytes
    }
}
