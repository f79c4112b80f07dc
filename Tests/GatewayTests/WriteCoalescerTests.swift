import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// What NIOHTTP2 writes before a flush reaches TLS as one buffer (one record), in order, with
/// every write's promise kept.
struct WriteCoalescerTests {
    @Test func writesBeforeAFlushGoDownAsOne() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescer())
        var completed: [Int] = []
        for (index, text) in ["HEADERS", "DATA-HEADER", "payload"].enumerated() {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenSuccess { completed.append(index) }
            channel.write(IOData.byteBuffer(ByteBuffer(string: text)), promise: promise)
        }
        #expect(try channel.readOutbound(as: IOData.self) == nil, "nothing goes down before the flush")
        channel.flush()
        guard case .byteBuffer(let one)? = try channel.readOutbound(as: IOData.self) else {
            Issue.record("no write")
            return
        }
        #expect(String(buffer: one) == "HEADERSDATA-HEADERpayload")
        #expect(try channel.readOutbound(as: IOData.self) == nil)
        #expect(completed == [0, 1, 2])
        _ = try channel.finish()
    }

    @Test func aRecordsWorthAtMostAndLargeWritesPassThroughInOrder() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescer())
        let small = ByteBuffer(repeating: UInt8(ascii: "a"), count: 10_000)
        let large = ByteBuffer(repeating: UInt8(ascii: "b"), count: WriteCoalescer.limit + 1)
        channel.write(IOData.byteBuffer(small), promise: nil)
        channel.write(IOData.byteBuffer(small), promise: nil)  // past the limit together: two writes
        channel.write(IOData.byteBuffer(large), promise: nil)  // as it is, after what was gathered
        channel.write(IOData.byteBuffer(ByteBuffer(string: "end")), promise: nil)
        channel.flush()
        var sizes: [Int] = []
        while case .byteBuffer(let buffer)? = try channel.readOutbound(as: IOData.self) { sizes.append(buffer.readableBytes) }
        #expect(sizes == [10_000, 10_000, WriteCoalescer.limit + 1, 3])
        _ = try channel.finish()
    }

    /// A close hands what was gathered down first: the channel then holds it as any write not
    /// yet flushed (and ends it with the close), rather than the coalescer keeping it.
    @Test func aCloseHandsWhatWasGatheredDown() throws {
        let channel = EmbeddedChannel(handler: WriteCoalescer())
        channel.write(IOData.byteBuffer(ByteBuffer(string: "GOAWAY")), promise: nil)
        // `finish` closes the channel through the pipeline, then reports what it holds.
        guard case .leftOvers(_, _, let pending) = try channel.finish() else {
            Issue.record("the gathered write did not reach the channel before the close")
            return
        }
        // NIOAny describes a ByteBuffer by its bytes in hex: "GOAWAY".
        #expect(pending.count == 1 && "\(pending[0])".contains("474f41574159"), "\(pending)")
    }
}
