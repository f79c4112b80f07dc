import NIOCore
import Router

/// An incremental HTTP/1.1 parser for one direction of one connection, pure and I/O-free.
///
/// Bytes go in with `append`; the owner pulls events with `next()` only when it can act on them,
/// so unread bytes stay here and the owner stops reading the socket: that is both the pipelining
/// queue and the backpressure. Body events are slices of the received buffers (no copies). The
/// checks follow RFC 9112 strictly where laxness enables request smuggling: no obs-fold, no
/// space before a colon, no bare CR, no Content-Length together with Transfer-Encoding, no
/// differing Content-Length values.
public struct HTTP1Parser {
    public enum Kind { case request, response }

    public enum Event {
        case head(HTTPHead)
        case body(ByteBuffer)
        case end
        case needMoreData
    }

    private enum State {
        /// Waiting for a complete head; `scanned` bytes were already searched for its end.
        case head(scanned: Int)
        case lengthBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(scanned: Int, consumed: Int)
        case untilClose
        case failed(HTTPParseError)
    }

    public let kind: Kind
    /// Upper bound of a head (start line + fields), and of a chunked body's trailer section.
    public var maxHeadBytes: Int
    public var maxHeaderCount: Int
    /// Responses only: set before parsing the response to a HEAD request, whose body is empty
    /// whatever its Content-Length says.
    public var respondingToHead = false

    private var buffer = ByteBuffer()
    private var state = State.head(scanned: 0)
    /// The last head handed out, until a later call finds no one else holding it (or the next
    /// head is parsed).
    private var issuedHead: HTTPHead?
    /// A head nobody holds any more: the next one is parsed into it (an upstream connection's
    /// responses then cost no `HTTPHead` and field array each).
    private var spareHead: HTTPHead?

    public init(kind: Kind, maxHeadBytes: Int = 32 * 1024, maxHeaderCount: Int = 128) {
        self.kind = kind
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaderCount = maxHeaderCount
    }

    /// Bytes received but not yet turned into events.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// Lets go of the last received buffer once all of it was read: an idle connection then
    /// holds no receive buffer, and NIO can reuse the one it read into. The last head handed
    /// out stops being followed here too: reused if no one else holds it, else let go (following
    /// it would keep its bytes, a slice of that receive buffer, while idle).
    public mutating func releaseConsumedBytes() {
        if buffer.readableBytes == 0, buffer.capacity > 0 { buffer = ByteBuffer() }
        if issuedHead != nil {
            takeBackIssuedHead()
            issuedHead = nil
        }
    }

    /// Lets go of the head kept for reuse too (a connection idle long enough to give its
    /// buffers back).
    public mutating func releaseSpareHead() {
        spareHead = nil
    }

    /// Everything received and not yet parsed, taken out: after a protocol switch (101) the
    /// bytes are no longer HTTP messages but the tunnel's.
    public mutating func takeBufferedBytes() -> ByteBuffer {
        let bytes = buffer
        buffer = ByteBuffer()
        return bytes
    }

    /// Received bytes not yet parsed, left in place (to recognise another protocol's preface).
    public var bufferedView: ByteBufferView { buffer.readableBytesView }

    /// Between messages, with nothing of the next one received yet.
    public var isIdle: Bool {
        if case .head = state, !pendingEnd, buffer.readableBytes == 0 { return true }
        return false
    }

    /// Waiting for (part of) a head: a timeout now means the peer is slow to send its headers.
    public var isReadingHead: Bool {
        if case .head = state, !pendingEnd { return true }
        return false
    }

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
            return
        }
        if buffer.readerIndex > 16 * 1024 {
            buffer.discardReadBytes()
        }
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// The next event, or `.needMoreData`. After an error every call repeats the error.
    public mutating func next() throws(HTTPParseError) -> Event {
        if issuedHead != nil { takeBackIssuedHead() }
        switch state {
        case .failed(let error):
            throw error
        case .head(let scanned):
            return try parseHead(scanned: scanned)
        case .lengthBody(let remaining):
            guard buffer.readableBytes > 0 else { return .needMoreData }
            let count = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: count)!
            if count == remaining {
                state = .head(scanned: 0)
                // Hand out the last slice now; the caller asks again and gets `.end`.
                pendingEnd = true
            } else {
                state = .lengthBody(remaining: remaining - count)
            }
            return .body(slice)
        case .chunkSize:
            return try parseChunkSize()
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return .needMoreData }
            let count = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: count)!
            state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
            return .body(slice)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return .needMoreData }
            guard buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A else {
                return try fail(.malformedChunk)
            }
            buffer.moveReaderIndex(forwardBy: 2)
            state = .chunkSize
            return try parseChunkSize()
        case .trailers(let scanned, let consumed):
            return try parseTrailers(scanned: scanned, consumed: consumed)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return .needMoreData }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        }
    }

    /// Set when a Content-Length body's last bytes were returned; the next call returns `.end`.
    private var pendingEnd = false

    /// The peer closed its side: a close-delimited body ends here, anything else half-received
    /// is truncated.
    public mutating func finish() throws(HTTPParseError) -> Event {
        if pendingEnd { return try next() }
        switch state {
        case .untilClose:
            state = .head(scanned: 0)
            return .end
        case .head where buffer.readableBytes == 0:
            return .needMoreData
        case .failed(let error):
            throw error
        default:
            return try fail(.truncatedMessage)
        }
    }

    private mutating func fail(_ error: HTTPParseError) throws(HTTPParseError) -> Event {
        state = .failed(error)
        throw error
    }

    // MARK: Heads

    /// Checked on every call: once no one else holds the last head (an exchange keeps its
    /// request's head; a response head held until its body starts, or cached, is kept), it is
    /// reused for the next one, and its bytes are let go at once (a slice of the connection's
    /// receive buffer, which NIO reuses only when nothing holds it).
    private mutating func takeBackIssuedHead() {
        if let (head, _) = HTTPHead.reclaim(&issuedHead) { spareHead = head }
    }

    private mutating func parseHead(scanned: Int) throws(HTTPParseError) -> Event {
        if pendingEnd {
            pendingEnd = false
            return .end
        }
        if kind == .request {
            skipLeadingEmptyLines()
        }
        guard let headLength = findEndOfSection(from: buffer.readerIndex, scanned: scanned) else {
            if buffer.readableBytes > maxHeadBytes {
                return try fail(.headTooLarge)
            }
            // A CR not followed by LF can only be an error: say so now rather than at the
            // header timeout (a head of bare-CR lines never ends).
            if hasBareCR(from: scanned) {
                return try fail(.malformedHeader)
            }
            state = .head(scanned: max(0, buffer.readableBytes - 3))
            return .needMoreData
        }
        guard headLength <= maxHeadBytes else { return try fail(.headTooLarge) }
        let raw = buffer.readSlice(length: headLength)!
        let head: HTTPHead
        do {
            // A head still held elsewhere is no longer followed.
            issuedHead = nil
            let spare = spareHead
            spareHead = nil
            head = try HTTPHeadParser.parse(raw, kind: kind, maxHeaderCount: maxHeaderCount, reusing: spare)
        } catch {
            return try fail(error)
        }
        var framing = head.framing
        if kind == .response, respondingToHead {
            framing = .none
        }
        switch framing {
        case .none, .length(0):
            state = .head(scanned: 0)
            if head.isRequest || head.status >= 200 {
                pendingEnd = true
            }
        case .length(let length):
            state = .lengthBody(remaining: length)
        case .chunked:
            state = .chunkSize
        case .untilClose:
            state = .untilClose
        }
        issuedHead = head
        return .head(head)
    }

    /// RFC 9112 §2.2: a server ignores empty lines received before a request-line.
    private mutating func skipLeadingEmptyLines() {
        var skipped = 0
        while skipped < 8, let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              byte == ASCII.cr || byte == ASCII.lf {
            buffer.moveReaderIndex(forwardBy: 1)
            skipped += 1
        }
    }

    /// A CR not followed by LF in what arrived since `scanned` (less one byte: a CR at the end
    /// of the last read may meet its LF now).
    private func hasBareCR(from scanned: Int) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            var i = max(0, scanned - 1)
            while i + 1 < bytes.count {
                if bytes[i] == ASCII.cr && bytes[i + 1] != ASCII.lf { return true }
                i += 1
            }
            return false
        }
    }

    /// The length from `start` through the blank line ending a head or trailer section, or nil.
    /// A line ends with LF (a CR before it is stripped when the line is parsed).
    private func findEndOfSection(from start: Int, scanned: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            let base = start - buffer.readerIndex
            var i = base + scanned
            let end = bytes.count
            while i < end {
                guard let lf = memchrLF(bytes, from: i, to: end) else { return nil }
                // An empty line is "\n" right after the previous "\n", or "\r\n" right after it.
                if lf == base { return lf + 1 - base }
                if bytes[lf - 1] == ASCII.lf { return lf + 1 - base }
                if bytes[lf - 1] == ASCII.cr && (lf - 1 == base || bytes[lf - 2] == ASCII.lf) {
                    return lf + 1 - base
                }
                i = lf + 1
            }
            return nil
        }
    }

    // MARK: Chunked bodies

    private mutating func parseChunkSize() throws(HTTPParseError) -> Event {
        let line: (size: Int, length: Int)?? = buffer.withUnsafeReadableBytes { bytes in
            guard let lf = memchrLF(bytes, from: 0, to: min(bytes.count, 4096)) else {
                return bytes.count >= 4096 ? .some(nil) : nil
            }
            var lineEnd = lf
            if lineEnd > 0 && bytes[lineEnd - 1] == ASCII.cr { lineEnd -= 1 } else { return .some(nil) }
            var size = 0
            var i = 0
            while i < lineEnd, let digit = ASCII.hexValue(bytes[i]) {
                guard i < 15 else { return .some(nil) }
                size = size << 4 | digit
                i += 1
            }
            guard i > 0 else { return .some(nil) }
            // Optional chunk extensions (ignored): BWS ";" ...
            while i < lineEnd, ASCII.isOWS(bytes[i]) { i += 1 }
            if i < lineEnd {
                guard bytes[i] == ASCII.semicolon else { return .some(nil) }
                for j in i..<lineEnd where !ASCII.isFieldValueChar(bytes[j]) { return .some(nil) }
            }
            return .some((size, lf + 1))
        }
        switch line {
        case .none:
            return .needMoreData
        case .some(.none):
            return try fail(.malformedChunk)
        case .some(.some(let parsed)):
            buffer.moveReaderIndex(forwardBy: parsed.length)
            if parsed.size == 0 {
                state = .trailers(scanned: 0, consumed: 0)
                return try parseTrailers(scanned: 0, consumed: 0)
            }
            state = .chunkData(remaining: parsed.size)
            return try next()
        }
    }

    /// Trailer fields are read and dropped: the gateway forwards bodies, not trailers.
    private mutating func parseTrailers(scanned: Int, consumed: Int) throws(HTTPParseError) -> Event {
        // The common case: no trailers, just the final CRLF.
        if scanned == 0, buffer.readableBytes >= 2,
           buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            state = .head(scanned: 0)
            return .end
        }
        guard let length = findEndOfSection(from: buffer.readerIndex, scanned: scanned) else {
            if consumed + buffer.readableBytes > maxHeadBytes { return try fail(.headTooLarge) }
            state = .trailers(scanned: max(0, buffer.readableBytes - 3), consumed: consumed)
            return .needMoreData
        }
        guard consumed + length <= maxHeadBytes else { return try fail(.headTooLarge) }
        buffer.moveReaderIndex(forwardBy: length)
        state = .head(scanned: 0)
        return .end
    }
}

@inline(__always)
public func memchrLF(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
    guard from < to, let base = bytes.baseAddress else { return nil }
    guard let found = memchr(base + from, Int32(ASCII.lf), to - from) else { return nil }
    return UnsafeRawPointer(found) - base
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
