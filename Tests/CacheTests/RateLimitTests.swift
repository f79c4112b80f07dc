import Testing

@testable import Cache

/// GCRA and the in-process table, on an injected clock (microseconds).
@Suite struct RateLimitTests {
    @Test func aBurstThenTheSteadyRate() {
        let rule = GCRA(limit: 10, periodMicroseconds: 1_000_000, burst: 0)
        var tat: Int64?
        var remaining: [Int] = []
        for _ in 0..<10 {
            let outcome = rule.check(tat: tat, now: 0)
            #expect(outcome.allowed)
            remaining.append(outcome.remaining)
            tat = outcome.tat
        }
        #expect(remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
        let limited = rule.check(tat: tat, now: 0)
        #expect(!limited.allowed && limited.remaining == 0)
        #expect(limited.retryAfterMicroseconds == 100_000, "one request back every period / limit")
        #expect(limited.resetMicroseconds == 1_000_000, "full again after the whole period")
        #expect(limited.tat == tat, "a refused request takes nothing")
        // Just before the interval: still refused; at it: exactly one.
        #expect(!rule.check(tat: tat, now: 99_999).allowed)
        let next = rule.check(tat: tat, now: 100_000)
        #expect(next.allowed && next.remaining == 0)
        #expect(!rule.check(tat: next.tat, now: 100_000).allowed)
        // Steady: one every 100 ms goes on being allowed.
        var steady = next.tat
        for step in 2...20 {
            let outcome = rule.check(tat: steady, now: Int64(step) * 100_000)
            #expect(outcome.allowed)
            steady = outcome.tat
        }
        // Idle for a whole period: the full bucket again.
        #expect(rule.check(tat: steady, now: 2_000_000 + 1_000_000).remaining == 9)
    }

    @Test func burstAndCost() {
        let rule = GCRA(limit: 10, periodMicroseconds: 1_000_000, burst: 5)
        #expect(rule.capacity == 15)
        var tat: Int64?
        var allowed = 0
        for _ in 0..<20 {
            let outcome = rule.check(tat: tat, now: 0)
            if outcome.allowed { allowed += 1 }
            tat = outcome.tat
        }
        #expect(allowed == 15)
        let costly = GCRA(limit: 10, periodMicroseconds: 1_000_000, burst: 0)
        let first = costly.check(tat: nil, now: 0, cost: 4)
        #expect(first.allowed && first.remaining == 6)
        let second = costly.check(tat: first.tat, now: 0, cost: 4)
        #expect(second.allowed && second.remaining == 2)
        let third = costly.check(tat: second.tat, now: 0, cost: 4)
        #expect(!third.allowed && third.retryAfterMicroseconds == 200_000, "two more intervals make room for four")
    }

    @Test func aSlowRateOfTheSampleDomain() {
        // 100 per 15 minutes: 100 at once, then one every 9 s.
        let rule = GCRA(limit: 100, periodMicroseconds: 900_000_000, burst: 0)
        var tat: Int64?
        for _ in 0..<100 { tat = rule.check(tat: tat, now: 0).tat }
        let limited = rule.check(tat: tat, now: 0)
        #expect(!limited.allowed && limited.retryAfterMicroseconds == 9_000_000)
    }

    @Test func theLocalTableLimitsPerKeyAndStaysBounded() {
        let limiter = LocalRateLimiter(maxEntries: 1600, shardCount: 16)
        let rule = GCRA(limit: 3, periodMicroseconds: 1_000_000, burst: 0)
        let a = (0..<5).map { _ in limiter.check(.init(policy: 0, text: "a"), rule: rule, now: 0).allowed }
        let b = (0..<5).map { _ in limiter.check(.init(policy: 0, text: "b"), rule: rule, now: 0).allowed }
        #expect(a == [true, true, true, false, false] && b == a)
        #expect(limiter.check(.init(policy: 0, text: "a"), rule: rule, now: 400_000).allowed)
        // Many keys: the table never grows past its bound.
        for i in 0..<20_000 { _ = limiter.check(.init(policy: 0, address: UInt128(i)), rule: rule, now: 0) }
        #expect(limiter.count <= 1600)
        // Expired entries go first: later, the table makes room without dropping live buckets.
        for i in 0..<100 { _ = limiter.check(.init(policy: 1, text: "late\(i)"), rule: rule, now: 10_000_000) }
        #expect(limiter.count <= 1600)
    }
}

/// Leases of a shared bucket, with an injected clock and Redis's answers played by hand.
@Suite struct RateLimitLeaseTests {
    let second: Int64 = 1_000_000

    @Test func aColdKeyTakesExactlyItsCostEachTime() {
        var lease = RateLimitLease(cost: 1)
        // Requests a minute apart: each takes one token from Redis, and holds none after.
        for minute in 0..<3 {
            let now = Int64(minute) * 60 * second
            do { let decision = lease.spend(cost: 1, now: now, maxSize: 50, lifetime: second); #expect(decision == .take(count: 1, renewal: true)) }
            let allowed = lease.granted(1, remaining: 1, retryAfter: 0, reset: 30 * second, renewal: true, spendNow: 1, now: now, lifetime: second)
            #expect(allowed)
            #expect(lease.tokens == 0)
        }
    }

    @Test func aBusyKeyLeasesMoreUpToTheMaxAndRenewsAheadOfNeed() {
        var lease = RateLimitLease(cost: 1)
        var now: Int64 = 0
        var calls = 0
        var served = 0
        var inFlight: Int?
        // 1,000 requests 1 ms apart; Redis answers a renewal 2 ms after it was asked for.
        var answerAt: Int64 = .max
        for _ in 0..<1000 {
            if let count = inFlight, now >= answerAt {
                _ = lease.granted(count, remaining: 1_000_000, retryAfter: 0, reset: second, renewal: true, spendNow: 0, now: now, lifetime: second)
                inFlight = nil
            }
            let decision = lease.spend(cost: 1, now: now, maxSize: 64, lifetime: second)
            switch decision {
            case .allow(let renew):
                served += 1
                if let renew {
                    calls += 1
                    inFlight = renew
                    answerAt = now + 2000
                }
            case .take(let count, let renewal):
                calls += 1
                if lease.granted(count, remaining: 1_000_000, retryAfter: 0, reset: second, renewal: renewal, spendNow: 1, now: now, lifetime: second) {
                    served += 1
                }
            case .deny:
                Issue.record("denied with tokens to spare")
            }
            #expect(lease.size <= 64)
            now += 1000
        }
        #expect(served == 1000)
        // Doubling to 64 then about one renewal per 32 requests: far fewer calls than requests.
        #expect(calls < 60, "\(calls) Redis calls for 1,000 requests")
        #expect(lease.size == 64)
    }

    @Test func aRefusalIsKeptUntilRedisSaidATokenExists() {
        var lease = RateLimitLease(cost: 1)
        do { let decision = lease.spend(cost: 1, now: 0, maxSize: 10, lifetime: second); #expect(decision == .take(count: 1, renewal: true)) }
        let allowed = lease.granted(0, remaining: 0, retryAfter: 3 * second, reset: 60 * second, renewal: true, spendNow: 1, now: 0, lifetime: second)
        #expect(!allowed)
        #expect(lease.blockedUntil == 3 * second)
        // Refused here, without asking Redis, until then.
        do { let decision = lease.spend(cost: 1, now: 2 * second, maxSize: 10, lifetime: second); #expect(decision == .deny) }
        let after = lease.spend(cost: 1, now: 3 * second, maxSize: 10, lifetime: second)
        if case .take = after {} else { Issue.record("no take after the refusal's end") }
    }

    @Test func unspentTokensExpireAndAFailedTakeLeavesNothingInFlight() {
        var lease = RateLimitLease(cost: 2)
        do { let decision = lease.spend(cost: 2, now: 0, maxSize: 20, lifetime: second); #expect(decision == .take(count: 2, renewal: true)) }
        _ = lease.granted(10, remaining: 50, retryAfter: 0, reset: second, renewal: true, spendNow: 2, now: 0, lifetime: second)
        #expect(lease.tokens == 8 && lease.remaining == 58)
        do { let decision = lease.spend(cost: 2, now: 10, maxSize: 20, lifetime: second); #expect(decision == .allow(renew: nil)) }
        // Past the lifetime the 6 left are gone: a take again (the key went idle: its cost).
        do { let decision = lease.spend(cost: 2, now: 5 * second, maxSize: 20, lifetime: second); #expect(decision == .take(count: 2, renewal: true)) }
        #expect(lease.tokens == 0)
        // While that take is in flight, another request asks for its own cost.
        do { let decision = lease.spend(cost: 2, now: 5 * second, maxSize: 20, lifetime: second); #expect(decision == .take(count: 2, renewal: false)) }
        lease.takeFailed(renewal: true)
        #expect(!lease.taking)
    }
}
