import NIOCore

/// The per-event-loop contexts of one gateway, found by the loop a channel runs on.
final class LoopContexts: Sendable {
    private let boxes: [ObjectIdentifier: NIOLoopBoundBox<LoopContext>]
    let ordered: [NIOLoopBoundBox<LoopContext>]

    init(group: EventLoopGroup, runtime: GatewayRuntime, connector: UpstreamConnector & Sendable) {
        let loops = Array(group.makeIterator())
        var boxes: [ObjectIdentifier: NIOLoopBoundBox<LoopContext>] = [:]
        var ordered: [NIOLoopBoundBox<LoopContext>] = []
        for loop in loops {
            let box = NIOLoopBoundBox.makeBoxSendingValue(
                LoopContext(eventLoop: loop, runtime: runtime, connector: connector, loopCount: loops.count),
                eventLoop: loop)
            boxes[ObjectIdentifier(loop)] = box
            ordered.append(box)
        }
        self.boxes = boxes
        self.ordered = ordered
        for box in ordered {
            box.eventLoop.execute { box.value.peers = self }
        }
    }

    /// The context of the loop the caller runs on.
    func context(for eventLoop: EventLoop) -> LoopContext {
        boxes[ObjectIdentifier(eventLoop)]!.value
    }

    /// Runs `body` on every loop and collects the results.
    func collect<T: Sendable>(_ body: @escaping @Sendable (LoopContext) -> T) async -> [T] {
        var results: [T] = []
        for box in ordered {
            if let value = try? await box.eventLoop.submit({ body(box.value) }).get() {
                results.append(value)
            }
        }
        return results
    }

    /// Runs `body` on every loop without waiting.
    func forEach(_ body: @escaping @Sendable (LoopContext) -> Void) {
        for box in ordered {
            box.eventLoop.execute { body(box.value) }
        }
    }
}
