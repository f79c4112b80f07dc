import HTTPWire
import NIOCore

/// A stream's response as HTTP/2 frames: the head becomes a HEADERS block (`:status`,
/// lower-case names, no hop-by-hop fields; `HPACKResponseEncoder`), body parts DATA frames,
/// interim responses HEADERS without END_STREAM. Every kind of response (upstream, cached, local
/// answers, errors) is composed by the one `ResponseComposer` and comes here as that HTTP/1.1
/// text, so all of them are translated the same way.
///
/// END_STREAM rides on the last frame instead of an empty one: the final HEADERS and the last
/// DATA part are held until the next part, the end, or a flush shows whether more follows.
struct HTTP2ResponseFrames {
    enum Frame {
        /// A head as HTTP/1.1 text, encoded by the codec straight into what it sends
        /// (`HPACKResponseEncoder`).
        case headers(ByteBuffer, endStream: Bool)
        case data(ByteBuffer, endStream: Bool)
    }

    private var heldHead: ByteBuffer?
    private var heldData: ByteBuffer?
    /// The final head went out (or is held).
    private(set) var started = false
    /// END_STREAM was emitted.
    private(set) var ended = false

    /// A 1xx response: HEADERS of its own, at once.
    mutating func interim(_ head: ByteBuffer, emit: (Frame) -> Void) {
        guard !started else { return }
        emit(.headers(head, endStream: false))
    }

    /// The final head (held: the end may come with it).
    mutating func head(_ head: ByteBuffer) {
        guard !started else { return }
        started = true
        heldHead = head
    }

    /// A part of the body (held: it may be the last).
    mutating func body(_ part: ByteBuffer, emit: (Frame) -> Void) {
        guard started, !ended, part.readableBytes > 0 else { return }
        releaseHeld(emit)
        heldData = part
    }

    /// The downstream wrote all it has for now: what was held goes, without END_STREAM.
    mutating func flush(_ emit: (Frame) -> Void) {
        releaseHeld(emit)
    }

    /// The response is complete: END_STREAM on what was held (or on an empty DATA frame).
    mutating func end(_ emit: (Frame) -> Void) {
        guard started, !ended else { return }
        ended = true
        if let head = heldHead {
            heldHead = nil
            emit(.headers(head, endStream: true))
        } else {
            emit(.data(heldData ?? ByteBuffer(), endStream: true))
            heldData = nil
        }
    }

    private mutating func releaseHeld(_ emit: (Frame) -> Void) {
        if let head = heldHead {
            heldHead = nil
            emit(.headers(head, endStream: false))
        }
        if let data = heldData {
            heldData = nil
            emit(.data(data, endStream: false))
        }
    }
}
