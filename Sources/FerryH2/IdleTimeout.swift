import FerryH2
import NIOCore

/// Ends something that sat idle too long, at no cost while it is busy: going busy only clears
/// `idleSince`, and the one scheduled check either lapses (busy), re-arms for the rest (idle
/// for less than the timeout), or fires `expired`. So a connection that goes idle between
/// every call does not schedule and cancel an event-loop task per call (each costs a
/// promise, a future and a heap search). Touched only on its event loop.
package final class IdleTimeout {
    private let eventLoop: EventLoop
    private let clock: MonotonicClock
    private let timeoutNanoseconds: Int64
    private var timer: Scheduled<Void>?
    /// When the owner last went idle (monotonic nanoseconds); 0 while busy.
    private var idleSince: Int64 = 0
    /// Called once the owner has been idle for the whole timeout. It may hold the owner
    /// unowned: the owner cancels the timeout before it goes.
    package var expired: () -> Void = {}

    package init(eventLoop: EventLoop, timeout: TimeAmount, clock: MonotonicClock = .system) {
        self.eventLoop = eventLoop
        self.clock = clock
        self.timeoutNanoseconds = timeout.nanoseconds
    }

    package func busy() {
        idleSince = 0
    }

    package func idle() {
        idleSince = clock.now()
        if timer == nil { schedule() }
    }

    package func cancel() {
        timer?.cancel()
        timer = nil
        idleSince = 0
    }

    private func schedule() {
        let due = UInt64(idleSince) &+ UInt64(timeoutNanoseconds)
        timer = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: .uptimeNanoseconds(due)) {
            self.timer = nil
            self.check()
        }
    }

    private func check() {
        guard idleSince != 0 else { return }
        if clock.now() - idleSince >= timeoutNanoseconds {
            idleSince = 0
            expired()
        } else {
            schedule()
        }
    }
}
