/// Stops a client from hammering a server that keeps failing (Hystrix, Envoy's outlier
/// detection for Redis): `threshold` failures in a row open the circuit, and requests fail at
/// once for a cool-down that doubles each time it reopens (up to `maxOpen`); then one request
/// is let through as a probe, and its success closes the circuit. Pure: the caller passes the
/// time (nanoseconds of any monotonic clock).
public struct CircuitBreaker: Sendable {
    public struct Settings: Sendable {
        public var threshold: Int
        public var baseOpenNanoseconds: Int64
        public var maxOpenNanoseconds: Int64

        public init(threshold: Int = 3, baseOpenNanoseconds: Int64 = 500_000_000, maxOpenNanoseconds: Int64 = 10_000_000_000) {
            self.threshold = threshold
            self.baseOpenNanoseconds = baseOpenNanoseconds
            self.maxOpenNanoseconds = maxOpenNanoseconds
        }
    }

    public enum State: Sendable, Equatable {
        case closed
        case open(until: Int64)
        /// One probe is out; everything else still fails fast.
        case halfOpen
    }

    public let settings: Settings
    public private(set) var state = State.closed
    public private(set) var consecutiveFailures = 0
    /// Times opened since it was last closed (the cool-down doubles with each).
    public private(set) var openings = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    public var isClosed: Bool { state == .closed }

    /// Whether a request may go now. In the open state past its cool-down, the first caller
    /// becomes the probe.
    public mutating func permit(now: Int64) -> Bool {
        switch state {
        case .closed:
            return true
        case .open(let until):
            guard now >= until else { return false }
            state = .halfOpen
            return true
        case .halfOpen:
            return false
        }
    }

    /// Returns true when this closed an open or half-open circuit.
    @discardableResult
    public mutating func recordSuccess() -> Bool {
        consecutiveFailures = 0
        guard state != .closed else { return false }
        state = .closed
        openings = 0
        return true
    }

    /// Returns true when this opened the circuit.
    @discardableResult
    public mutating func recordFailure(now: Int64) -> Bool {
        consecutiveFailures += 1
        switch state {
        case .closed where consecutiveFailures >= settings.threshold, .halfOpen:
            let shift = min(openings, 20)
            let coolDown = min(settings.maxOpenNanoseconds, settings.baseOpenNanoseconds << shift)
            state = .open(until: now + coolDown)
            openings += 1
            return true
        case .closed, .open:
            return false
        }
    }
}
