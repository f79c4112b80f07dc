import NIOCore

/// A request body read before its exchange began (`limits.request_buffering`): the whole of a
/// small body, or the first part of a chunked one that turned out larger (the rest streams).
/// Its parts are sent again on a retry, so a request that never reached an upstream can go
/// elsewhere body and all.
struct BufferedRequestBody {
    var parts: [ByteBuffer] = []
    var bytes = 0
    /// The whole body is here (it goes up in the client's framing, re-chunked if chunked).
    var complete = false
}
