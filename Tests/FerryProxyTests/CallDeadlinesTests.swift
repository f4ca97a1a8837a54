@testable import FerryProxy
import FerryH2
import NIOCore
import NIOEmbedded
import XCTest

/// The loop's deadline queue with owners that are not calls (CallTimerOwner): timers fire in
/// order at their time and not before, a disarmed one never fires, and an owner that arms again
/// from its handler gets the new timer.
final class CallDeadlinesTests: XCTestCase {
    private final class Owner: CallTimerOwner {
        let name: String
        var armed: Set<UInt64> = []
        var fired: [String] = []
        var onFire: ((Owner) -> Void)?
        init(_ name: String) { self.name = name }
        func ownsTimer(_ id: TimerID) -> Bool { armed.contains(id.raw) }
        func timerFired(_ id: TimerID) {
            armed.remove(id.raw)
            fired.append("\(name)#\(id.raw)")
            onFire?(self)
        }
    }

    func testTimersFireInOrderAtTheirTimeAndDisarmedOnesNever() {
        let loop = EmbeddedEventLoop()
        let clock = MonotonicClock { Int64(loop.now.uptimeNanoseconds) }
        let deadlines = CallDeadlines<Owner>(eventLoop: loop, clock: clock)
        let a = Owner("a"), b = Owner("b")
        let start = clock.now()
        let late = deadlines.arm(a, expiresAt: start + 30_000_000)
        a.armed.insert(late.raw)
        let early = deadlines.arm(b, expiresAt: start + 10_000_000)
        b.armed.insert(early.raw)
        let dropped = deadlines.arm(b, expiresAt: start + 20_000_000)
        // b disarms its second timer: it forgets the id and tells the queue.
        deadlines.disarm()
        XCTAssertEqual(deadlines.pendingCount, 3, "a disarmed entry is dropped lazily")
        loop.advanceTime(by: .milliseconds(9))
        XCTAssertEqual(a.fired + b.fired, [])
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(b.fired, ["b#\(early.raw)"])
        // Re-armed from the handler, a's next timer fires an interval later.
        a.onFire = { owner in
            owner.onFire = nil
            let next = deadlines.arm(owner, expiresAt: clock.now() + 5_000_000)
            owner.armed.insert(next.raw)
        }
        loop.advanceTime(by: .milliseconds(20))
        XCTAssertEqual(a.fired, ["a#\(late.raw)"])
        XCTAssertFalse(b.fired.contains("b#\(dropped.raw)"), "the disarmed timer never fires")
        loop.advanceTime(by: .milliseconds(5))
        XCTAssertEqual(a.fired.count, 2)
        XCTAssertEqual(deadlines.pendingCount, 0)
    }

    func testOnceNoDeadlineIsLiveTheQueueKeepsNoOwner() {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let clock = MonotonicClock { Int64(loop.now.uptimeNanoseconds) }
        let deadlines = CallDeadlines<Owner>(eventLoop: loop, clock: clock)
        weak var released: Owner?
        do {
            let owner = Owner("done")
            released = owner
            for step in 1...3 { owner.armed.insert(deadlines.arm(owner, expiresAt: clock.now() + Int64(step) * 1_000_000_000).raw) }
            for id in owner.armed { owner.armed.remove(id); deadlines.disarm() }
        }
        XCTAssertEqual(deadlines.pendingCount, 0)
        XCTAssertNil(released, "an owner whose timers are all disarmed is not kept until they would have fired")
        loop.advanceTime(by: .seconds(5))
        XCTAssertEqual(deadlines.pendingCount, 0)
    }
}
