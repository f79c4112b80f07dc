import Testing

@testable import Router

@Suite struct HealthCheckStateTests {
    @Test func fallAndRise() {
        var health = HealthCheckState(rise: 2, fall: 3)
        #expect(health.isUp)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: true) == nil)  // the streak is broken
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == .wentDown)
        #expect(!health.isUp)
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: true) == .cameUp)
        #expect(health.probes == 10 && health.failures == 6)
    }
}

@Suite struct OutlierDetectorTests {
    let second: Int64 = 1_000_000_000
    func detector(percent: Int = 50) -> OutlierDetector {
        OutlierDetector(
            settings: .init(consecutiveErrors: 3, baseEjectionNanoseconds: 10 * second, maxEjectionNanoseconds: 25 * second,
                            maxEjectedPercent: percent),
            poolOfServer: [0, 0, 0, 0, 1], serversOfPool: [[0, 1, 2, 3], [4]])
    }

    @Test func anotherLoopsDecisionsAreAdoptedWithinThePoolsShare() {
        var outliers = detector()
        // A streak counted across loops ejects on this loop's first failure.
        do { let ejected = outliers.recordFailure(1, now: 0, streak: 3); #expect(ejected) }
        var other = detector()
        other.adopt(1, ejectedUntil: 10 * second, timesEjected: 1, backedOffUntil: nil)
        #expect(other.isEjected(1) && other.ejectedUntil[1] == 10 * second && other.timesEjected[1] == 1)
        // Half of the pool of four at most: a second is adopted, a third is not.
        other.adopt(2, ejectedUntil: 10 * second, timesEjected: 1, backedOffUntil: nil)
        other.adopt(3, ejectedUntil: 10 * second, timesEjected: 1, backedOffUntil: nil)
        #expect(other.isEjected(2) && !other.isEjected(3))
        // A backoff is adopted as is (a refused connect is certain).
        other.adopt(3, ejectedUntil: nil, timesEjected: 0, backedOffUntil: 2 * second)
        #expect(other.isUnavailable(3) && !other.isEjected(3))
        #expect(other.expire(now: 2 * second) == [3])
    }

    @Test func consecutiveFailuresEjectForGrowingTimes() {
        var outliers = detector()
        do { let ejected = outliers.recordFailure(0, now: 0); #expect(!ejected) }
        do { let ejected = outliers.recordFailure(0, now: 0); #expect(!ejected) }
        outliers.recordSuccess(0)  // resets the count
        do { let ejected = outliers.recordFailure(0, now: 0); #expect(!ejected) }
        do { let ejected = outliers.recordFailure(0, now: 0); #expect(!ejected) }
        do { let ejected = outliers.recordFailure(0, now: 0); #expect(ejected) }
        #expect(outliers.isEjected(0))
        #expect(outliers.expire(now: 9 * second).isEmpty)
        #expect(outliers.expire(now: 10 * second) == [0])
        // Second ejection lasts twice as long, the third is capped.
        for _ in 0..<3 { _ = outliers.recordFailure(0, now: 11 * second) }
        #expect(outliers.ejectedUntil[0] == 31 * second)
        _ = outliers.expire(now: 31 * second)
        for _ in 0..<3 { _ = outliers.recordFailure(0, now: 32 * second) }
        #expect(outliers.ejectedUntil[0] == 57 * second)
        // Well-behaved for longer than the cap: the multiplier starts over.
        _ = outliers.expire(now: 57 * second)
        for _ in 0..<3 { _ = outliers.recordFailure(0, now: 100 * second) }
        #expect(outliers.ejectedUntil[0] == 110 * second)
    }

    @Test func failedConnectsBackOffWhateverThePoolShare() {
        var outliers = detector()
        // Server 4 is alone in its pool: never ejected, but a refused connect skips it a while.
        _ = outliers.recordConnectFailure(4, now: 0)
        #expect(outliers.isUnavailable(4) && !outliers.isEjected(4))
        #expect(outliers.expire(now: second - 1).isEmpty)
        #expect(outliers.expire(now: second) == [4])
        _ = outliers.recordConnectFailure(4, now: second)
        #expect(outliers.backedOffUntil[4] == 3 * second)  // doubled
        for _ in 0..<10 { _ = outliers.recordConnectFailure(4, now: second) }
        #expect(outliers.backedOffUntil[4] == 11 * second)  // capped at 10 s
        // A success resets the backoff.
        _ = outliers.expire(now: 20 * second)
        outliers.recordSuccess(4)
        _ = outliers.recordConnectFailure(4, now: 30 * second)
        #expect(outliers.backedOffUntil[4] == 31 * second)
    }

    @Test func neverMoreThanTheShareOfAPool() {
        var outliers = detector(percent: 50)
        for server in 0..<4 {
            for _ in 0..<3 { _ = outliers.recordFailure(server, now: 0) }
        }
        let snapshot = outliers
        #expect((0..<4).filter { snapshot.isEjected($0) }.count == 2)
        // A pool of one is never emptied.
        for _ in 0..<10 { _ = outliers.recordFailure(4, now: 0) }
        #expect(!outliers.isEjected(4))
    }
}

@Suite struct ReplicaLagTests {
    @Test func lsnParsing() {
        #expect(LSN("0/16B3748")?.value == 0x16B3748)
        #expect(LSN("1/0")?.value == 1 << 32)
        #expect(LSN("A/FF")?.description == "A/FF")
        #expect(LSN("nope") == nil)
        #expect(LSN("1/2/3") == nil)
    }

    @Test func timeLagIsHowLongAgoThePrimaryPassedTheReplayPosition() {
        let second: Int64 = 1_000_000_000
        var history = WALHistory()
        #expect(history.lag(replay: LSN(10), now: 0) == nil)
        history.record(LSN(100), at: 0)
        history.record(LSN(100), at: 1 * second)  // idle: no new position
        history.record(LSN(150), at: 2 * second)  // a checkpoint record, say
        history.record(LSN(400), at: 3 * second)
        // Replayed everything: no lag, however old the last transaction.
        #expect(history.lag(replay: LSN(400), now: 60 * second) == ReplicaLag(bytes: 0, seconds: 0))
        #expect(history.lag(replay: LSN(500), now: 60 * second) == ReplicaLag(bytes: 0, seconds: 0))
        // Just behind the last sample: behind since that sample.
        #expect(history.lag(replay: LSN(150), now: 3 * second + 200_000_000) == ReplicaLag(bytes: 250, seconds: 0.2))
        // Stuck at 100 since the primary moved past it at 2 s.
        #expect(history.lag(replay: LSN(100), now: 10 * second) == ReplicaLag(bytes: 300, seconds: 8))
        // Behind everything recorded: at least since the first sample.
        #expect(history.lag(replay: LSN(5), now: 10 * second) == ReplicaLag(bytes: 395, seconds: 10))
    }

    @Test func historyIsBounded() {
        var history = WALHistory(capacity: 3)
        for i in 1...10 { history.record(LSN(UInt64(i * 10)), at: Int64(i)) }
        #expect(history.latest == LSN(100))
        // Older samples are gone: the lag is counted from the oldest kept.
        #expect(history.lag(replay: LSN(1), now: 10)?.seconds == 2e-9)
    }

    @Test func freshnessWithHysteresis() {
        var freshness = ReplicaFreshness(maxLagSeconds: 5, maxLagBytes: 1_000_000)
        func lag(_ seconds: Double, _ bytes: UInt64 = 1) -> ReplicaLag {
            ReplicaLag(bytes: bytes, seconds: seconds)
        }
        #expect(freshness.state == .unknown)
        #expect(freshness.update(lag(1)) == .fresh)
        #expect(freshness.update(lag(4.9)) == nil)
        #expect(freshness.update(lag(5.1)) == .stale)
        // Back under the limit but above 80% of it: still stale.
        #expect(freshness.update(lag(4.5)) == nil)
        #expect(freshness.update(lag(3.9)) == .fresh)
        #expect(freshness.update(lag(0.1, 2_000_000)) == .stale)  // the byte limit
        #expect(freshness.update(nil) == .unknown)
    }
}

@Suite struct WriteTargetElectionTests {
    typealias O = WriteTargetElection.Observation
    @Test func elections() {
        #expect(WriteTargetElection.elect([O(reachable: true, inRecovery: false), O(reachable: true, inRecovery: true)]) == .primary(0))
        // The primary is gone, a replica was promoted.
        #expect(WriteTargetElection.elect([O(reachable: false, inRecovery: false), O(reachable: true, inRecovery: false)]) == .primary(1))
        #expect(WriteTargetElection.elect([O(reachable: false, inRecovery: false), O(reachable: true, inRecovery: true)]) == .none)
        #expect(WriteTargetElection.elect([O(reachable: true, inRecovery: false), O(reachable: true, inRecovery: false)]) == .splitBrain([0, 1]))
        #expect(WriteTargetElection.elect([O(reachable: true, inRecovery: nil)]) == .none)
    }
}

@Suite struct RetryBudgetTests {
    let second: Int64 = 1_000_000_000
    @Test func retriesStayUnderTheShareOfTraffic() {
        var budget = RetryBudget(percent: 20, minimumPerSecond: 1, windowSeconds: 10)
        // The floor: 1 per second over a 10 s window.
        var granted = 0
        for _ in 0..<50 where budget.tryRetry(now: 0) { granted += 1 }
        #expect(granted == 10)
        // Under load the share applies: 1,000 requests → 200 retries in the window.
        var busy = RetryBudget(percent: 20, minimumPerSecond: 1, windowSeconds: 10)
        for _ in 0..<1000 { busy.recordRequest(now: 2 * second) }
        granted = 0
        for _ in 0..<500 where busy.tryRetry(now: 2 * second) { granted += 1 }
        #expect(granted == 200)
        // A window later the budget is back.
        let later = busy.tryRetry(now: 30 * second)
        #expect(later)
    }
}

@Suite struct RetryPickTests {
    @Test func samePoolFirstThenTheNextCandidate() {
        let router = makeRouter()
        var balancer = BalancerState(servers: 8, seed: 5)
        let state = RoutingState.allUp(servers: 8, pools: 4, writePool: 0)
        var decision = router.decide(request(.get, client: "127.0.0.2"), headers: Headers(), state: state, balancer: &balancer)
        let first = decision.server!
        #expect(decision.pool == 1)
        router.retry(&decision, failed: first, state: state, balancer: &balancer)
        #expect(decision.pool == 1 && decision.server == (first == 2 ? 3 : 2))
        var secondFailed = state
        secondFailed.serverAvailable[first] = false
        router.retry(&decision, failed: decision.server!, state: secondFailed, balancer: &balancer)
        #expect(decision.pool == 2)
    }
}
