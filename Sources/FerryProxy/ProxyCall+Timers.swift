import FerryPolicy
import NIOCore

/// The call's timers, all in its event loop's deadline queue: the deadline itself, the stream
/// idle check, and (armed as the state machine answers, +Actions) the backoff, per-try and hedge timers.
extension ProxyCall: CallTimerOwner {
    /// Fixes the call's deadline (now, as the headers arrived) and arms its timer. Returns false
    /// when the deadline leaves nothing to send upstream: the call has then already failed.
    func armDeadline(callerTimeout: Int64?, policy: ResolvedPolicy) -> Bool {
        let now = now()
        // The deadline starts when the headers were read, not when their turn to be handled came.
        let arrived = downstream.connection.readStartedAt
        guard let deadline = CallDeadline(startedAt: arrived > 0 && arrived <= now ? arrived : now, callerTimeout: callerTimeout,
                                          methodTimeout: policy.callerTimeoutReplaces && callerTimeout != nil
                                              ? policy.callerTimeoutCapNanoseconds : policy.timeoutNanoseconds,
                                          listenerMax: listener.maxDeadlineNanoseconds) else { return true }
        self.deadline = deadline
        guard deadline.propagatedTimeout(at: now, offset: policy.deadlineOffsetNanoseconds) != nil else {
            fail(deadlineError(deadline))
            return false
        }
        timers.armed(.deadline, deadlines.arm(self, expiresAt: deadline.expiresAt))
        return true
    }

    /// True while `id` is one of this call's armed timers (deadline, idle check, retry backoff,
    /// per-try timeout, hedge delay).
    func ownsTimer(_ id: TimerID) -> Bool { timers.kind(of: id) != nil }

    /// The loop's deadline queue fired timer `id`: it is forgotten, then handled.
    func timerFired(_ id: TimerID) {
        guard let kind = timers.kind(of: id) else { return }
        _ = timers.take(kind)
        switch kind {
        case .deadline: deadlineExpired()
        case .idle: idleCheck()
        case .retryBackoff: retryTimerFired()
        case .perTry: perTryTimerFired()
        case .hedge: hedgeTimerFired()
        case .faultDelay: faultDelayElapsed()
        }
    }

    /// No DATA either way since `lastActivity`: fail the call if that is a whole idle timeout
    /// ago, else look again when it will be (one timer per idle period, not per message).
    func idleCheck() {
        guard let idle = policy?.streamIdleNanoseconds, !machine.responseEnded, !downstream.isClosed else { return }
        let due = lastActivity + idle
        if due <= now() {
            routeMetrics?.streamIdleTimeouts += 1
            fail(.streamIdle(idle, policyOrigin: policy?.origin ?? "?"))
        } else {
            timers.armed(.idle, deadlines.arm(self, expiresAt: due))
        }
    }

    /// An injected delay is over: the injected abort that came with it answers the call, else
    /// its first attempt is placed.
    func faultDelayElapsed() {
        guard !machine.responseEnded, !downstream.isClosed else { return }
        if let abort = faultAbortAfterDelay {
            faultAbortAfterDelay = nil
            routeMetrics?.faultAborts[faultOrigin, default: 0] += 1
            fail(abort)
            return
        }
        if let placement = machine.delayElapsed(at: now(), pick: { self.service?.pickPool(avoiding: $0) }) {
            perform(placement)
        }
    }

    func deadlineExpired() {
        guard let deadline, !machine.responseEnded, !downstream.isClosed else { return }
        fail(deadlineError(deadline))
    }

    func deadlineError(_ deadline: CallDeadline) -> ProxyError {
        switch deadline.source {
        case .caller: routeMetrics?.deadlineExceeded[0] += 1
        case .method: routeMetrics?.deadlineExceeded[1] += 1
        case .listener: routeMetrics?.deadlineExceeded[2] += 1
        }
        return .deadlineExceeded(deadline, policyOrigin: policy?.origin ?? "?", listener: listener.name, grpc: isGRPC)
    }

    /// The call is over (or its response complete): its timers are no longer wanted.
    func disarmAll() {
        disarm(.deadline)
        disarm(.idle)
        disarm(.retryBackoff)
        disarm(.hedge)
        disarm(.perTry)
        disarm(.faultDelay)
    }

    /// Forgets the call's timer of `kind`, if one is armed (the loop's queue drops it lazily).
    func disarm(_ kind: CallTimers.Kind) {
        guard timers.take(kind) != nil else { return }
        deadlines.disarm()
    }
}
