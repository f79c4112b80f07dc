/// Which database takes writes, from what the probes see. Exactly one reachable database out
/// of recovery is the primary. None: writes fail fast (503) and reads go on. Two or more: a
/// split brain — writes fail too, rather than land on a primary that will be thrown away.
public enum WriteTargetElection {
    public struct Observation: Sendable, Equatable {
        public let reachable: Bool
        /// nil when never seen.
        public let inRecovery: Bool?

        public init(reachable: Bool, inRecovery: Bool?) {
            self.reachable = reachable
            self.inRecovery = inRecovery
        }
    }

    public enum Outcome: Sendable, Equatable {
        case primary(Int)
        case none
        case splitBrain([Int])
    }

    public static func elect(_ databases: [Observation]) -> Outcome {
        let primaries = databases.indices.filter { databases[$0].reachable && databases[$0].inRecovery == false }
        switch primaries.count {
        case 0: return .none
        case 1: return .primary(primaries[0])
        default: return .splitBrain(primaries)
        }
    }
}
