import HTTPWire
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The HTTP/1.1 response bytes a stream's `HTTP1Connection` writes, as HTTP/2 frames: the head
/// becomes HEADERS (`:status`, lower-case names, no hop-by-hop fields), the body DATA frames
/// (chunked coding removed), interim responses HEADERS without END_STREAM. Every kind of
/// response (upstream, cached, local answers, errors) is written by the one composer, so all of
/// them are translated here the same way.
///
/// END_STREAM rides on the last frame instead of an empty one: the final HEADERS and the last
/// DATA part are held until the next part, the end, or a flush shows whether more follows.
struct HTTP2ResponseFrames {
    private var parser: HTTP1Parser
    private var heldHead: HPACKHeaders?
    private var heldData: ByteBuffer?
    /// The final head went out (or is held).
    private(set) var started = false
    /// END_STREAM was emitted.
    private(set) var ended = false

    /// - Parameter respondingToHead: the request was HEAD, so no body follows any head.
    init(respondingToHead: Bool, maxHeadBytes: Int) {
        parser = HTTP1Parser(kind: .response, maxHeadBytes: maxHeadBytes, maxHeaderCount: 1024)
        parser.respondingToHead = respondingToHead
    }

    /// Takes response bytes; `emit` gets each frame payload ready to go.
    mutating func translate(_ bytes: ByteBuffer, emit: (HTTP2Frame.FramePayload) -> Void) throws(HTTPParseError) {
        parser.append(bytes)
        while !ended {
            switch try parser.next() {
            case .head(let head):
                let headers = Self.headers(of: head)
                if head.status < 200 {
                    emit(.headers(.init(headers: headers)))
                } else {
                    started = true
                    heldHead = headers
                }
            case .body(let part):
                releaseHeld(emit)
                heldData = part
            case .end:
                finish(emit)
            case .needMoreData:
                parser.releaseConsumedBytes()
                return
            }
        }
    }

    /// The connection wrote all it has for now: what was held goes, without END_STREAM.
    mutating func flush(_ emit: (HTTP2Frame.FramePayload) -> Void) {
        releaseHeld(emit)
    }

    /// The connection closed its side: a body delimited by the close ends here. Returns whether
    /// the response is complete (else the stream is to be reset).
    mutating func close(_ emit: (HTTP2Frame.FramePayload) -> Void) -> Bool {
        guard !ended else { return true }
        guard started, case .end? = try? parser.finish() else { return false }
        finish(emit)
        return true
    }

    private mutating func finish(_ emit: (HTTP2Frame.FramePayload) -> Void) {
        ended = true
        if let head = heldHead {
            heldHead = nil
            emit(.headers(.init(headers: head, endStream: true)))
        } else {
            emit(.data(.init(data: .byteBuffer(heldData ?? ByteBuffer()), endStream: true)))
            heldData = nil
        }
    }

    private mutating func releaseHeld(_ emit: (HTTP2Frame.FramePayload) -> Void) {
        if let head = heldHead {
            heldHead = nil
            emit(.headers(.init(headers: head)))
        }
        if let data = heldData {
            heldData = nil
            emit(.data(.init(data: .byteBuffer(data))))
        }
    }

    /// RFC 9113 §8.2.2 and §8.3.2: `:status` first, names in lower case, and none of the fields
    /// that only mean something to one HTTP/1.1 connection. Values unique to one response stay
    /// out of the HPACK table (they would only push out entries that repeat), and Set-Cookie is
    /// never indexed, not even by a proxy downstream (RFC 7541 §7.1.3).
    static func headers(of head: HTTPHead) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(head.fields.count + 1)
        headers.add(name: ":status", value: String(head.status))
        for field in head.fields where !field.hopByHop && !field.kind.isHopByHop {
            let indexing: HPACKIndexing
            switch field.kind {
            case .setCookie: indexing = .neverIndexed
            case .xRequestID, .age, .etag: indexing = .nonIndexable
            default: indexing = .indexable
            }
            headers.add(name: lowercasedName(of: field, in: head), value: head.value(of: field), indexing: indexing)
        }
        return headers
    }

    /// The field's name in lower case, made in one pass from the head's bytes.
    private static func lowercasedName(of field: HeaderField, in head: HTTPHead) -> String {
        head.raw.withUnsafeReadableBytes { bytes in
            let start = Int(field.nameStart), count = Int(field.nameLength)
            return String(unsafeUninitializedCapacity: count) { out in
                for i in 0..<count { out[i] = ASCII.lowercased(bytes[start + i]) }
                return count
            }
        }
    }
}
