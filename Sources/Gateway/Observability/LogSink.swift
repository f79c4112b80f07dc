import NIOConcurrencyHelpers
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where log lines go: appended to a buffer under a lock and written to a file descriptor by a
/// background thread, so an event loop never blocks on a slow terminal, pipe or disk. When the
/// writer falls too far behind, lines are dropped and counted rather than growing memory.
///
/// With a `writeInterval` (the access log's), the writer wakes on its own every interval, or
/// when 64 KiB are waiting, and writes everything in one system call: the loops never pay for a
/// wake-up of another thread, whatever the request rate (nginx's `buffer=`/`flush=`). Without
/// one (the application log), a line is written as soon as the writer can.
final class LogSink: AccessLogOutput, @unchecked Sendable {
    private let lock = NIOLock()
    /// Held while bytes are written to the descriptor.
    private let output = NIOLock()
    private var pending: [UInt8] = []
    private var droppedCount = 0
    private let fd: Int32
    private let maxPending: Int
    private let writeInterval: Double?
    private static let wakeBytes = 64 * 1024
    private var thread: Thread?
    private let condition = ConditionLock(value: 0)

    static let standardError = LogSink(fd: 2)
    static let standardOutput = LogSink(fd: 1, writeInterval: 0.1)

    init(fd: Int32, maxPending: Int = 8 << 20, writeInterval: Double? = nil) {
        self.fd = fd
        self.maxPending = maxPending
        self.writeInterval = writeInterval
        pending.reserveCapacity(Self.wakeBytes)
    }

    var dropped: Int { lock.withLock { droppedCount } }
    var droppedLines: Int { dropped }

    /// Queues a batch of the access log.
    func write(_ bytes: ByteBuffer, lines: Int) {
        bytes.withUnsafeReadableBytes { write($0, lines: lines) }
    }

    func write(_ bytes: [UInt8], lines: Int = 1) {
        bytes.withUnsafeBytes { write($0, lines: lines) }
    }

    /// Queues `bytes` (`lines` whole lines) for the writer thread.
    func write(_ bytes: UnsafeRawBufferPointer, lines: Int) {
        let (wake, first): (Bool, Bool) = lock.withLock {
            guard pending.count + bytes.count <= maxPending else {
                droppedCount += lines
                return (false, false)
            }
            let before = pending.count
            pending.append(contentsOf: bytes)
            let wake = writeInterval == nil ? before == 0 : before < Self.wakeBytes && pending.count >= Self.wakeBytes
            return (wake, thread == nil)
        }
        if first { startIfNeeded() }
        if wake { condition.lock(); condition.unlock(withValue: 1) }
    }

    /// Writes whatever is pending now, on the caller's thread (used at exit).
    func flush() {
        // After the writer's batch in flight, if any: nothing is lost or reordered at exit.
        output.withLock {
            let bytes: [UInt8] = lock.withLock {
                defer { pending.removeAll(keepingCapacity: true) }
                return pending
            }
            writeAll(bytes)
        }
    }

    private func startIfNeeded() {
        lock.withLock {
            guard thread == nil else { return }
            let thread = Thread { [self] in self.run() }
            self.thread = thread
            thread.start()
        }
    }

    private func run() {
        // Two buffers trade places: what was pending is written while loops fill the other, and
        // neither is ever copied or reallocated.
        var batch: [UInt8] = []
        batch.reserveCapacity(64 * 1024)
        while true {
            if let writeInterval {
                if condition.lock(whenValue: 1, timeoutSeconds: writeInterval) { condition.unlock(withValue: 0) }
            } else {
                condition.lock(whenValue: 1)
                condition.unlock(withValue: 0)
            }
            output.withLock {
                lock.withLock { swap(&pending, &batch) }
                writeAll(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = systemWrite(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}

@inline(__always)
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, pointer, count)
    #else
    Darwin.write(fd, pointer, count)
    #endif
}
