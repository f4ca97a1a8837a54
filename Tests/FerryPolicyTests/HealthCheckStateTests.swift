import FerryPolicy
import XCTest

final class HealthCheckStateTests: XCTestCase {
    func testThresholdsInARow() {
        var state = HealthCheckState(settings: .init(healthyThreshold: 2, unhealthyThreshold: 3))
        XCTAssertEqual(state.status, .unknown, "a new endpoint takes calls until the checks decide")
        XCTAssertEqual(state.checkFailed(reason: "a"), .none)
        XCTAssertEqual(state.checkFailed(reason: "b"), .none)
        XCTAssertFalse(state.isUnhealthy)
        XCTAssertEqual(state.checkFailed(reason: "c"), .becameUnhealthy(reason: "c"))
        XCTAssertEqual(state.status, .unhealthy(reason: "c"))
        XCTAssertEqual(state.checkPassed(), .none, "one pass of two")
        XCTAssertEqual(state.checkFailed(reason: "d"), .none, "a failure starts the count of passes over")
        XCTAssertEqual(state.status, .unhealthy(reason: "d"))
        XCTAssertEqual(state.checkPassed(), .none)
        XCTAssertEqual(state.checkPassed(), .recovered)
        XCTAssertEqual(state.status, .healthy)
    }

    func testAPassBetweenFailuresResetsTheirCount() {
        var state = HealthCheckState(settings: .init(healthyThreshold: 1, unhealthyThreshold: 2))
        _ = state.checkPassed()
        XCTAssertEqual(state.checkFailed(reason: "x"), .none)
        XCTAssertEqual(state.checkPassed(), .none)
        XCTAssertEqual(state.checkFailed(reason: "y"), .none, "not two in a row")
        XCTAssertEqual(state.checkFailed(reason: "z"), .becameUnhealthy(reason: "z"))
        XCTAssertEqual(state.checkPassed(), .recovered)
    }
}

final class HealthCheckReportTests: XCTestCase {
    func testAWatchReportAppliesAtOnceWhateverTheThresholds() {
        var state = HealthCheckState(settings: .init(healthyThreshold: 3, unhealthyThreshold: 3))
        XCTAssertEqual(state.reported(servingOr: nil), .none)
        XCTAssertEqual(state.status, .healthy)
        XCTAssertEqual(state.reported(servingOr: "NOT_SERVING"), .becameUnhealthy(reason: "NOT_SERVING"))
        XCTAssertEqual(state.reported(servingOr: "SERVICE_UNKNOWN"), .none, "already out: the reason is updated")
        XCTAssertEqual(state.status, .unhealthy(reason: "SERVICE_UNKNOWN"))
        XCTAssertEqual(state.reported(servingOr: nil), .recovered)
        XCTAssertEqual(state.checkFailed(reason: "stream broke"), .none, "a broken stream counts against the threshold")
    }
}
