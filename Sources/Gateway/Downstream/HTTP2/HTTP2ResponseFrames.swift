import HTTPWire
import NIOCore
import NIOHPACK
import NIOHTTP2

/// A stream's response as HTTP/2 frames: the head becomes HEADERS (`:status`, lower-case names,
/// no hop-by-hop fields), body parts DATA frames, interim responses HEADERS without END_STREAM.
/// Every kind of response (upstream, cached, local answers, errors) is composed by the one
/// `ResponseComposer` and comes here as an `HTTPHead`, so all of them are translated the same way.
///
/// END_STREAM rides on the last frame instead of an empty one: the final HEADERS and the last
/// DATA part are held until the next part, the end, or a flush shows whether more follows.
struct HTTP2ResponseFrames {
    private var heldHead: HPACKHeaders?
    private var heldData: ByteBuffer?
    /// The final head went out (or is held).
    private(set) var started = false
    /// END_STREAM was emitted.
    private(set) var ended = false

    /// A 1xx response: HEADERS of its own, at once.
    mutating func interim(_ head: HTTPHead, emit: (HTTP2Frame.FramePayload) -> Void) {
        guard !started else { return }
        emit(.headers(.init(headers: Self.headers(of: head))))
    }

    /// The final head (held: the end may come with it).
    mutating func head(_ headers: HPACKHeaders) {
        guard !started else { return }
        started = true
        heldHead = headers
    }

    /// A part of the body (held: it may be the last).
    mutating func body(_ part: ByteBuffer, emit: (HTTP2Frame.FramePayload) -> Void) {
        guard started, !ended, part.readableBytes > 0 else { return }
        releaseHeld(emit)
        heldData = part
    }

    /// The downstream wrote all it has for now: what was held goes, without END_STREAM.
    mutating func flush(_ emit: (HTTP2Frame.FramePayload) -> Void) {
        releaseHeld(emit)
    }

    /// The response is complete: END_STREAM on what was held (or on an empty DATA frame).
    mutating func end(_ emit: (HTTP2Frame.FramePayload) -> Void) {
        guard started, !ended else { return }
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
