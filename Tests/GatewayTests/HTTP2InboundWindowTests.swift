import Testing

@testable import Gateway

/// When a stream's (or the connection's) receive window is opened again, without I/O: DATA
/// not yet taken by the upstream keeps it closed, so a client sends at most one window ahead.
struct HTTP2InboundWindowTests {
    @Test func bytesNotYetTakenKeepTheWindowClosed() {
        var window = HTTP2InboundWindow(target: 65536)
        // NIOHTTP2 reports the window after each DATA frame; the bytes wait for the upstream.
        window.received(16384)
        #expect(window.windowChanged(to: 49152) == nil)
        window.received(49152)
        #expect(window.windowChanged(to: 0) == nil, "all of it still waits: nothing may be opened")
        // The upstream takes it part by part: the window reopens once half of it is free.
        #expect(window.taken(16384) == nil, "a quarter taken: not yet")
        #expect(window.taken(16384) == 32768, "half taken: top up to the target")
        // NIOHTTP2 reports the update it sent; the rest is taken.
        #expect(window.windowChanged(to: 32768) == nil)
        #expect(window.taken(32768) == 32768, "all taken, half the window open: topped up again")
        #expect(window.waiting == 0)
    }

    @Test func bytesTakenAtOnceReopenAtHalf() {
        var window = HTTP2InboundWindow(target: 1_048_576)
        // The connection window starts at 65,535 whatever the target: the first DATA tops it up.
        #expect(window.windowChanged(to: 65535 - 100) == 1_048_576 - 65435)
        #expect(window.windowChanged(to: 1_048_576 - 1000) == nil)
        #expect(window.windowChanged(to: 524_288) == 524_288)
    }

    @Test func aNegativeWindowIsBroughtBackToTheTarget() {
        // A SETTINGS change can leave a window below zero (RFC 9113 §6.9.2).
        var window = HTTP2InboundWindow(target: 65536)
        #expect(window.windowChanged(to: -1000) == 66536)
    }

    @Test func aClosedStreamOpensNothing() {
        var window = HTTP2InboundWindow(target: 65536)
        window.closed = true
        #expect(window.windowChanged(to: 0) == nil)
        #expect(window.taken(100) == nil)
    }
}
