import NIOCore
import Testing

@testable import Gateway

/// One log line per key per interval, with the count of those held back (injected clock).
@Suite struct WarningThrottleTests {
    @Test func oneLinePerKeyPerIntervalSayingHowManyWereHeldBack() {
        var throttle = WarningThrottle(interval: .seconds(10))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        #expect(throttle.admit(1, now: start) == 0)
        #expect(throttle.admit(1, now: start + .seconds(1)) == nil)
        #expect(throttle.admit(1, now: start + .seconds(9)) == nil)
        // Another server has its own budget.
        #expect(throttle.admit(2, now: start + .seconds(9)) == 0)
        // Ten seconds on: logged again, saying two were not.
        #expect(throttle.admit(1, now: start + .seconds(10)) == 2)
        #expect(throttle.admit(1, now: start + .seconds(11)) == nil)
        #expect(throttle.admit(1, now: start + .seconds(25)) == 1)
    }
}
