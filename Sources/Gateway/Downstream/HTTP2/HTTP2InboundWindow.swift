/// When to open a flow-control window the client sends into again (a stream's, or the
/// connection's), as NIOHTTP2's stream channels did (its `InboundWindowManager`): bytes still
/// waiting to be taken count as not yet received, and a WINDOW_UPDATE goes out once the window
/// has fallen to half its target, topping it up to the target. So a stream whose upstream does
/// not take its body stops its client after one window, and the connection goes on.
struct HTTP2InboundWindow {
    private var target: Int
    /// The window the codec last reported (it shrinks with each DATA frame received).
    private var lastWindow: Int?
    /// Bytes received and not yet taken (they are still the client's to answer for).
    private(set) var waiting = 0
    /// No more updates (the stream ended).
    var closed = false

    init(target: Int) {
        self.target = target
    }

    /// The codec reports the window now; returns the increment to send, if one is due.
    mutating func windowChanged(to size: Int) -> Int? {
        lastWindow = size
        return increment()
    }

    /// Bytes arrived that will be taken later.
    mutating func received(_ bytes: Int) {
        waiting += bytes
    }

    /// Waiting bytes were taken; returns the increment to send, if one is due.
    mutating func taken(_ bytes: Int) -> Int? {
        waiting = max(0, waiting - bytes)
        return increment()
    }

    private func increment() -> Int? {
        guard !closed, let lastWindow else { return nil }
        let window = lastWindow + waiting
        if window >= target { return nil }
        if window < 0 { return min(-window + target, Int(Int32.max)) }
        let increment = target - window
        return increment >= window ? increment : nil
    }
}
