/// Active health of one server, HAProxy-style: `fall` consecutive failed probes take an up
/// server down, `rise` consecutive good ones bring a down server back. A server starts up, so
/// a restarted gateway serves at once instead of refusing until the first probes pass.
public struct HealthCheckState: Sendable, Equatable {
    public enum Transition: Sendable, Equatable { case wentDown, cameUp }

    public let rise: Int
    public let fall: Int
    public private(set) var isUp = true
    /// Consecutive results against the current state.
    public private(set) var streak = 0
    public private(set) var probes = 0
    public private(set) var failures = 0

    public init(rise: Int, fall: Int) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
    }

    public mutating func record(success: Bool) -> Transition? {
        probes += 1
        if !success { failures += 1 }
        if success == isUp {
            streak = 0
            return nil
        }
        streak += 1
        if isUp, streak >= fall {
            isUp = false
            streak = 0
            return .wentDown
        }
        if !isUp, streak >= rise {
            isUp = true
            streak = 0
            return .cameUp
        }
        return nil
    }
}
