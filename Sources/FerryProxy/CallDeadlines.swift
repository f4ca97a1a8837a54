import FerryH2
import FerryPolicy
import NIOCore

/// What arms timers in a `CallDeadlines` (a call): it says whether an id is still one of its
/// timers (a disarmed one is skipped when it surfaces) and hears the ones that fire.
protocol CallTimerOwner: AnyObject {
    func ownsTimer(_ id: TimerID) -> Bool
    func timerFired(_ id: TimerID)
}

/// The deadlines of every call on one event loop, behind a single NIO timer set for the
/// earliest. Arming and disarming a call's deadline costs O(log n) and O(1), whatever the
/// number of calls in flight; the timer is moved only when a new deadline is earlier than it.
final class CallDeadlines<Owner: CallTimerOwner> {
    private let eventLoop: EventLoop
    private let clock: MonotonicClock
    private var queue = DeadlineQueue<Owner>()
    private var timer: Scheduled<Void>?
    private var timerAt: Int64 = .max

    init(eventLoop: EventLoop, clock: MonotonicClock = .system) {
        self.eventLoop = eventLoop
        self.clock = clock
    }

    /// Calls `call.timerFired(id:)` at `expiresAt` (monotonic nanoseconds); returns the id.
    func arm(_ call: Owner, expiresAt: Int64) -> TimerID {
        let id = queue.add(call, expiresAt: expiresAt)
        if expiresAt < timerAt { setTimer(expiresAt) }
        return TimerID(raw: id)
    }

    /// The call no longer needs the deadline with that id (it ended first). When no deadline is
    /// left, the queue lets go of every call (its compaction), so a loop that goes idle (or shuts
    /// down) keeps no finished call, nor what it holds, alive. The NIO timer stays armed: it
    /// holds this object weakly, and cancelling it here would cost a cancel and a new schedule
    /// per call when calls come one at a time.
    func disarm() {
        queue.cancelOne()
        queue.compactIfWorthIt { $0.item.ownsTimer(TimerID(raw: $0.id)) }
    }

    var pendingCount: Int { queue.count }

    private func setTimer(_ at: Int64) {
        timer?.cancel()
        timerAt = at
        timer = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, at)))) { [weak self] in
            self?.fire()
        }
    }

    private func fire() {
        timer = nil
        timerAt = .max
        let now = clock.now()
        while let entry = queue.popExpired(now: now) {
            if entry.item.ownsTimer(TimerID(raw: entry.id)) {
                entry.item.timerFired(TimerID(raw: entry.id))
            } else {
                queue.staleEntryRemoved()
            }
        }
        if let next = queue.earliest { setTimer(next) }
    }
}
