import FerryPolicy
import XCTest

final class SuccessRateOutliersTests: XCTestCase {
    private func samples(_ rates: [(Int, Int)]) -> [SuccessRateOutliers.Sample] {
        rates.map { SuccessRateOutliers.Sample(successes: $0.0, failures: $0.1) }
    }

    func testAnEndpointFarBelowTheMeanIsTheOutlier() throws {
        // Four at 100%, one at 50%: mean 90%, standard deviation 20 points, threshold 52%.
        let verdict = try XCTUnwrap(SuccessRateOutliers.evaluate(samples([(100, 0), (100, 0), (50, 50), (100, 0), (100, 0)]),
                                                                 settings: .init()))
        XCTAssertEqual(verdict.mean, 0.9, accuracy: 1e-9)
        XCTAssertEqual(verdict.standardDeviation, 0.2, accuracy: 1e-9)
        XCTAssertEqual(verdict.threshold, 0.52, accuracy: 1e-9)
        XCTAssertEqual(verdict.outliers, [2])
        XCTAssertEqual(verdict.judged, [0, 1, 2, 3, 4])
    }

    func testAnOutlierIsAtLeastMinimumDistanceBelowTheMean() throws {
        // 99% beside four at 100%: 3.9 standard deviations below, but only 0.8 points.
        let rates = samples([(100, 0), (100, 0), (99, 1), (100, 0), (100, 0)])
        XCTAssertEqual(try XCTUnwrap(SuccessRateOutliers.evaluate(rates, settings: .init())).outliers, [])
        let envoy = SuccessRateOutliers.Settings(minimumDistance: 0)
        XCTAssertEqual(try XCTUnwrap(SuccessRateOutliers.evaluate(rates, settings: envoy)).outliers, [2], "the deviation alone, as in Envoy")
    }

    func testEqualRatesHaveNoOutlierHoweverLow() throws {
        let verdict = try XCTUnwrap(SuccessRateOutliers.evaluate(samples(Array(repeating: (30, 70), count: 5)), settings: .init()))
        XCTAssertEqual(verdict.outliers, [], "when every endpoint fails alike the fault is not one endpoint's")
    }

    func testTooFewEndpointsWithEnoughCallsJudgeNothing() {
        // Four endpoints with 100 calls and one with 99: only four are judged, five are needed.
        XCTAssertNil(SuccessRateOutliers.evaluate(samples([(100, 0), (100, 0), (100, 0), (0, 100), (0, 99)]), settings: .init()))
        let fewer = SuccessRateOutliers.Settings(minimumRequests: 99, minimumEndpoints: 5, stdevFactor: 1.9)
        XCTAssertNotNil(SuccessRateOutliers.evaluate(samples([(100, 0), (100, 0), (100, 0), (0, 100), (0, 99)]), settings: fewer))
    }

    func testLowVolumeEndpointsAreNeitherJudgedNorCountedInTheMean() throws {
        let settings = SuccessRateOutliers.Settings(minimumRequests: 10, minimumEndpoints: 3, stdevFactor: 1)
        // Index 3 failed its only 5 calls: too few to judge, and not in the mean either.
        let verdict = try XCTUnwrap(SuccessRateOutliers.evaluate(samples([(10, 0), (10, 0), (5, 5), (0, 5)]), settings: settings))
        XCTAssertEqual(verdict.judged, [0, 1, 2])
        XCTAssertEqual(verdict.mean, 2.5 / 3, accuracy: 1e-9)
        XCTAssertEqual(verdict.outliers, [2])
    }

    func testOutliersComeWorstFirst() throws {
        let settings = SuccessRateOutliers.Settings(minimumRequests: 10, minimumEndpoints: 5, stdevFactor: 0.5)
        let verdict = try XCTUnwrap(SuccessRateOutliers.evaluate(samples([(10, 0), (6, 4), (10, 0), (2, 8), (10, 0), (10, 0)]),
                                                                 settings: settings))
        XCTAssertEqual(verdict.outliers, [3, 1])
    }

    func testAnOutlierEjectionIsProbedLikeAnyOther() {
        var accrual = FailureAccrual()
        var random = FastRandom(seed: 3)
        let s: Int64 = 1_000_000_000
        XCTAssertTrue(accrual.ejectAsOutlier(at: 0, backoff: 4 * s, random: &random))
        guard case .ejected(let until, let backoff) = accrual.state else { return XCTFail("\(accrual.state)") }
        XCTAssertEqual(backoff, 4 * s)
        XCTAssertTrue((2 * s...4 * s).contains(until), "jittered within [backoff/2, backoff]")
        XCTAssertFalse(accrual.ejectAsOutlier(at: 0, backoff: s, random: &random), "an endpoint already out is left as it is")
        XCTAssertTrue(accrual.admit(at: until), "the probe")
        XCTAssertTrue(accrual.recordFailure(at: until, random: &random), "a failed probe ejects again")
        guard case .ejected(_, let next) = accrual.state else { return XCTFail("\(accrual.state)") }
        XCTAssertEqual(next, 8 * s, "for twice as long")
    }
}
