@testable import FerryProxy
import XCTest

final class CallTimersTests: XCTestCase {
    func testOneTimerPerKindNamedByItsQueueEntry() {
        var timers = CallTimers()
        XCTAssertFalse(timers.isArmed(.deadline))
        XCTAssertNil(timers.kind(of: TimerID(raw: 7)))
        timers.armed(.deadline, TimerID(raw: 7))
        timers.armed(.hedge, TimerID(raw: 9))
        XCTAssertEqual(timers.kind(of: TimerID(raw: 7)), .deadline)
        XCTAssertEqual(timers.kind(of: TimerID(raw: 9)), .hedge)
        XCTAssertNil(timers.kind(of: TimerID(raw: 8)), "an entry the call does not own (stale, another call's)")
        XCTAssertEqual(timers.take(.deadline), TimerID(raw: 7))
        XCTAssertNil(timers.take(.deadline), "taken once")
        XCTAssertNil(timers.kind(of: TimerID(raw: 7)), "a disarmed timer's entry is no longer the call's")
        timers.armed(.hedge, TimerID(raw: 12))
        XCTAssertNil(timers.kind(of: TimerID(raw: 9)), "re-arming replaces the old entry")
        XCTAssertTrue(timers.isArmed(.hedge))
    }
}
