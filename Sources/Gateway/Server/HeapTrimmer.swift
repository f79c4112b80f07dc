import Dispatch
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Returns free heap memory to the system (`malloc_trim`) on a background queue, so an event
/// loop never waits for it; concurrent requests coalesce into one trim.
enum HeapTrimmer {
    private static let scheduled = NIOLockedValueBox(false)

    /// glibc's `malloc_trim` (not in Swift's Glibc module), nil elsewhere.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    static func trimSoon() {
        let first = scheduled.withLockedValue { scheduled in
            defer { scheduled = true }
            return !scheduled
        }
        guard first else { return }
        DispatchQueue.global(qos: .utility).async {
            _ = mallocTrim?(0)
            scheduled.withLockedValue { $0 = false }
        }
    }
}
