import FerryPolicy
import XCTest

final class PeakEWMATests: XCTestCase {
    let ms: Int64 = 1_000_000
    let s: Int64 = 1_000_000_000

    func testStartsAtTheInitialEstimateAndAPeakReplacesItAtOnce() {
        var e = PeakEWMA(initial: 30 * ms, decay: 10 * s, now: 0)
        XCTAssertEqual(e.current(at: 0), Double(30 * ms))
        e.observe(80 * ms, at: 1 * ms)
        XCTAssertEqual(e.current(at: 1 * ms), Double(80 * ms), "a slower sample is taken whole")
    }

    func testTheFirstSampleReplacesThePriorEvenWhenFaster() {
        var e = PeakEWMA(initial: 30 * ms, decay: 10 * s, now: 0)
        e.observe(2 * ms, at: 1 * ms)
        XCTAssertEqual(e.current(at: 1 * ms), Double(2 * ms))
    }

    func testFasterSamplesPullTheEstimateDownByTheTimeElapsed() {
        var e = PeakEWMA(initial: 30 * ms, decay: 10 * s, now: 0)
        e.observe(100 * ms, at: 0)
        e.observe(0, at: 10 * s)                 // one decay constant later: weight e^-1
        XCTAssertEqual(e.current(at: 10 * s), 100 * Double(ms) * exp(-1), accuracy: 1)
        var quick = PeakEWMA(initial: 30 * ms, decay: 10 * s, now: 0)
        quick.observe(100 * ms, at: 0)
        quick.observe(0, at: 1 * ms)             // almost no time: almost no change
        XCTAssertGreaterThan(quick.current(at: 1 * ms), 99.9 * Double(ms))
    }

    func testIdleEstimateDecaysSoASlowEndpointIsTriedAgain() {
        let e = PeakEWMA(initial: 50 * ms, decay: 10 * s, now: 0)
        XCTAssertEqual(e.current(at: 20 * s), 50 * Double(ms) * exp(-2), accuracy: 1)
        XCTAssertEqual(e.cost(pending: 3, at: 0), 4 * 50 * Double(ms), "load = estimate x (pending + 1)")
    }
}

final class PowerOfTwoChoicesTests: XCTestCase {
    func testTheCheaperOfTwoDistinctDrawsWins() {
        var random = FastRandom(seed: 1)
        var counts = [0, 0, 0]
        let costs = [1.0, 2.0, 3.0]
        for _ in 0..<30_000 {
            let i = PowerOfTwoChoices.pick(count: 3, using: &random, isAvailable: { _ in true }, cost: { costs[$0] })!
            counts[i] += 1
        }
        // Pairs are equally likely: {0,1},{0,2} -> 0; {1,2} -> 1; the costliest never wins.
        XCTAssertEqual(Double(counts[0]) / 30_000, 2.0 / 3, accuracy: 0.02)
        XCTAssertEqual(Double(counts[1]) / 30_000, 1.0 / 3, accuracy: 0.02)
        XCTAssertEqual(counts[2], 0)
    }

    func testUniformCostsSpreadEvenlyAndUnavailableOnesAreSkipped() {
        var random = FastRandom(seed: 7)
        var counts = Array(repeating: 0, count: 10)
        for _ in 0..<50_000 {
            let i = PowerOfTwoChoices.pick(count: 10, using: &random, isAvailable: { $0 != 3 }, cost: { _ in 1 })!
            counts[i] += 1
        }
        XCTAssertEqual(counts[3], 0)
        for (i, n) in counts.enumerated() where i != 3 {
            XCTAssertEqual(Double(n) / 50_000, 1.0 / 9, accuracy: 0.01, "index \(i)")
        }
    }

    func testOneCandidateAndNoneAvailable() {
        var random = FastRandom(seed: 3)
        XCTAssertEqual(PowerOfTwoChoices.pick(count: 1, using: &random, isAvailable: { _ in true }, cost: { _ in 1 }), 0)
        XCTAssertNil(PowerOfTwoChoices.pick(count: 5, using: &random, isAvailable: { _ in false }, cost: { _ in 1 }))
        XCTAssertEqual(PowerOfTwoChoices.pick(count: 100, using: &random, isAvailable: { $0 == 42 }, cost: { _ in 1 }), 42,
                       "a single survivor among many is found")
    }

    func testWeightedRoundRobinIsProportionalAndInterleaved() {
        var wrr = WeightedRoundRobin()
        let weights = [5, 1, 1]
        let picks = (0..<7).map { _ in wrr.pick(weights: weights, isAvailable: { _ in true })! }
        XCTAssertEqual(picks, [0, 0, 1, 0, 2, 0, 0], "nginx's smooth order for 5:1:1")
        var skip = WeightedRoundRobin()
        XCTAssertEqual((0..<4).map { _ in skip.pick(weights: weights, isAvailable: { $0 != 0 })! }, [1, 2, 1, 2])
    }
}

final class FailureAccrualTests: XCTestCase {
    let s: Int64 = 1_000_000_000

    func testEjectsAfterTheThresholdOfConsecutiveFailuresOnly() {
        var a = FailureAccrual()
        var random = FastRandom(seed: 1)
        for _ in 0..<6 { XCTAssertFalse(a.recordFailure(at: 0, random: &random)) }
        a.recordSuccess()                              // a success resets the count
        for _ in 0..<6 { XCTAssertFalse(a.recordFailure(at: 0, random: &random)) }
        XCTAssertTrue(a.recordFailure(at: 0, random: &random), "the 7th consecutive failure ejects")
        XCTAssertFalse(a.isAvailable(at: 0))
        XCTAssertEqual(a.state, .ejected(until: 1 * s, backoff: 1 * s), "the first backoff is the minimum")
    }

    func testOneProbePerBackoffAndDoublingWithJitterUpToTheMaximum() {
        var a = FailureAccrual()
        var random = FastRandom(seed: 9)
        for _ in 0..<7 { a.recordFailure(at: 0, random: &random) }
        XCTAssertFalse(a.admit(at: 1 * s - 1))
        XCTAssertTrue(a.admit(at: 1 * s), "the backoff is over: one probe")
        XCTAssertFalse(a.admit(at: 1 * s), "and only one")
        var now = 1 * s
        var expected: Int64 = 1 * s
        for _ in 0..<10 {                              // the probe fails: backoff doubles (1,2,4,...,60 s)
            a.recordFailure(at: now, random: &random)
            expected = min(60 * s, expected * 2)
            guard case .ejected(let until, let backoff) = a.state else { return XCTFail("\(a.state)") }
            XCTAssertEqual(backoff, expected)
            XCTAssertGreaterThanOrEqual(until - now, expected / 2, "jitter stays in [backoff/2, backoff]")
            XCTAssertLessThanOrEqual(until - now, expected)
            now = until
            XCTAssertTrue(a.admit(at: now))
        }
        a.recordSuccess()
        XCTAssertEqual(a.state, .active(failures: 0), "a successful probe restores the endpoint")
    }

    func testAFailedProbeKeepsItsBackoffWhenEveryEndpointIsFailing() {
        // Issue 17: with every endpoint failing together the backoff used to double for as long
        // as the outage lasted, keeping healthy endpoints out 10-15 s after it ended.
        var a = FailureAccrual()
        var random = FastRandom(seed: 3)
        for _ in 0..<7 { a.recordFailure(at: 0, random: &random) }
        var now: Int64 = 0
        for _ in 0..<8 {                                 // 8 failed probes through a shared outage
            guard case .ejected(let until, _) = a.state else { return XCTFail("\(a.state)") }
            now = until
            XCTAssertTrue(a.admit(at: now))
            a.recordFailure(at: now, random: &random, growBackoff: false)
            guard case .ejected(_, let backoff) = a.state else { return XCTFail("\(a.state)") }
            XCTAssertEqual(backoff, 1 * s, "the backoff stays at the minimum")
        }
    }

    func testAnotherEndpointsRecoveryCutsAnEjectionShort() {
        var a = FailureAccrual()
        var random = FastRandom(seed: 5)
        for _ in 0..<7 { a.recordFailure(at: 0, random: &random) }
        for _ in 0..<4 {                                 // backoff grown to 16 s
            guard case .ejected(let until, _) = a.state else { return XCTFail("\(a.state)") }
            XCTAssertTrue(a.admit(at: until))
            a.recordFailure(at: until, random: &random)
        }
        guard case .ejected(let until, let backoff) = a.state else { return XCTFail("\(a.state)") }
        XCTAssertEqual(backoff, 16 * s)
        let recovery = until - 5 * s
        XCTAssertFalse(a.isAvailable(at: recovery))
        a.shortenWait(at: recovery)
        XCTAssertTrue(a.admit(at: recovery), "probed at once")
        a.recordFailure(at: recovery, random: &random)   // still failing: from the minimum again
        guard case .ejected(_, let after) = a.state else { return XCTFail("\(a.state)") }
        XCTAssertEqual(after, 2 * s)
        // A probe already out is left alone.
        XCTAssertTrue(a.admit(at: recovery + 3 * s))
        a.shortenWait(at: recovery + 3 * s)
        XCTAssertEqual(a.state, .probing(backoff: 2 * s))
    }

    func testAnAbandonedProbeLetsAnotherGo() {
        var a = FailureAccrual()
        var random = FastRandom(seed: 4)
        for _ in 0..<7 { a.recordFailure(at: 0, random: &random) }
        XCTAssertTrue(a.admit(at: 1 * s))
        a.abandonProbe(at: 1 * s + 5)                    // the probe call was cancelled by its caller
        XCTAssertTrue(a.admit(at: 1 * s + 5), "not stuck in probing: the next call probes")
        XCTAssertFalse(a.admit(at: 1 * s + 5))
    }

    func testTheFloorKeepsAnEndpointInWhenEjectionIsRefused() {
        var a = FailureAccrual()
        var random = FastRandom(seed: 2)
        for _ in 0..<20 { XCTAssertFalse(a.recordFailure(at: 0, random: &random, mayEject: false)) }
        XCTAssertTrue(a.isAvailable(at: 0))
    }

    /// A connection to an ejected endpoint was made (it restarted): it is probed at once, but
    /// only once per backoff, so one that accepts connections and fails calls is not hammered.
    func testASignOfLifeEndsTheWaitOncePerBackoff() {
        var a = FailureAccrual()
        var random = FastRandom(seed: 5)
        for _ in 0..<7 { a.recordFailure(at: 0, random: &random) }
        XCTAssertFalse(a.isAvailable(at: 100))
        XCTAssertTrue(a.endWait(at: 100))
        XCTAssertTrue(a.admit(at: 100), "the early probe")
        a.recordFailure(at: 200, random: &random)
        guard case .ejected(let until, let backoff) = a.state else { return XCTFail("\(a.state)") }
        XCTAssertEqual(backoff, 2 * s, "a failed early probe still grows the backoff")
        XCTAssertFalse(a.endWait(at: 300), "one early end per backoff")
        XCTAssertFalse(a.isAvailable(at: 300))
        XCTAssertTrue(a.admit(at: until), "the regular probe")
        a.recordFailure(at: until, random: &random)
        XCTAssertTrue(a.endWait(at: until + 1), "after a regular probe, a sign of life counts again")
        XCTAssertTrue(a.admit(at: until + 1))
        a.recordSuccess()
        XCTAssertEqual(a.state, .active(failures: 0))
        XCTAssertFalse(a.endWait(at: until + 2), "nothing to end when active")
    }
}

final class UnansweredAttemptsTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func testTheMeanAgeOfWhatIsUnansweredIsKeptInConstantSpace() {
        var u = UnansweredAttempts()
        XCTAssertEqual(u.meanAge(at: 10 * ms), 0)
        u.started(at: 0)
        u.started(at: 1000 * ms)
        XCTAssertEqual(u.meanAge(at: 2000 * ms), 1500 * ms)
        u.ended(startedAt: 0)
        XCTAssertEqual(u.meanAge(at: 2000 * ms), 1000 * ms)
        u.ended(startedAt: 1000 * ms)
        XCTAssertEqual(u.count, 0)
        XCTAssertEqual(u.meanAge(at: 3000 * ms), 0)
        u.ended(startedAt: 5)                     // more ends than starts cannot go negative
        XCTAssertEqual(u.count, 0)
    }

    /// Peak EWMA alone: the silent endpoint's estimate decays while it holds calls (before,
    /// 8.6 -> 5.3 ms in the SIGSTOP run). With the unanswered age it rises instead.
    func testASilentEndpointsCostRisesWhileItIsSilent() {
        var silent = PeakEWMA(initial: 5 * ms, decay: 10_000 * ms, now: 0)
        var healthy = PeakEWMA(initial: 5 * ms, decay: 10_000 * ms, now: 0)
        silent.observe(5 * ms, at: 0)
        healthy.observe(5 * ms, at: 0)
        var unanswered = UnansweredAttempts()
        for i: Int64 in 0..<3 { unanswered.started(at: i * ms) }
        var costs: [Double] = []
        for t in stride(from: 100 * ms, through: 2000 * ms, by: Int64.Stride(100 * ms)) {
            healthy.observe(5 * ms, at: t)
            costs.append(silent.cost(pending: 3, unanswered: unanswered, at: t))
            XCTAssertGreaterThan(costs.last!, healthy.cost(pending: 0, unanswered: UnansweredAttempts(), at: t))
        }
        XCTAssertEqual(costs, costs.sorted(), "the cost grows every moment the endpoint is silent")
        XCTAssertLessThan(silent.current(at: 2000 * ms), 5 * Double(ms), "the estimate alone decayed")
        // Once it is no longer silent, its cost is its estimate again.
        for i: Int64 in 0..<3 { unanswered.ended(startedAt: i * ms) }
        XCTAssertEqual(silent.cost(pending: 0, unanswered: unanswered, at: 2000 * ms), silent.current(at: 2000 * ms))
    }

    func testAWaitIsALowerBoundOfTheLatency() {
        var e = PeakEWMA(initial: 5 * ms, decay: 10_000 * ms, now: 0)
        e.observe(5 * ms, at: 0)
        e.observeAtLeast(1 * ms, at: 1 * ms)
        XCTAssertEqual(e.estimate, Double(5 * ms), "a short wait does not pull the estimate down")
        e.observeAtLeast(2000 * ms, at: 2000 * ms)
        XCTAssertEqual(e.estimate, Double(2000 * ms))
    }
}
