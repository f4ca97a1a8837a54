import FerryUpstream
import FerryGRPC
import FerryH2
import NIOCore

/// What `CallStateMachine`'s events answer: the actions `ProxyCall` performs. Each event has
/// its own type, so a shell's `switch` covers exactly what that event can ask for.
extension CallStateMachine {
    /// An attempt that is over: its pool is told `outcome` once; if it still `waiting` in the
    /// pool's queue it is taken out; its `stream`, if any, is reset (when still open and the
    /// event says so) and its unforwarded bytes dropped.
    struct EndedAttempt {
        let pool: Pool
        let startedAt: Int64
        let answered: Bool
        let outcome: UpstreamPool.AttemptOutcome
        let waiting: Bool
        let stream: Stream?
    }

    /// The attempts a transition ended: at most one primary, and racers or a waiting hedge.
    struct EndedAttempts {
        var primary: EndedAttempt?
        /// nil rather than empty: most transitions end no racer, and an empty array still
        /// costs a retain and a release wherever the value goes.
        private(set) var others: [EndedAttempt]?

        init(primary: EndedAttempt?, others: [EndedAttempt]? = nil) {
            self.primary = primary
            self.others = others
        }

        static var none: EndedAttempts { EndedAttempts(primary: nil) }

        var isEmpty: Bool { primary == nil && others == nil }

        mutating func add(_ other: EndedAttempt) {
            if others == nil { others = [other] } else { others!.append(other) }
        }
    }

    /// An attempt's response headers came: tell its pool it answered.
    struct Answered {
        let pool: Pool
        let startedAt: Int64
    }

    enum RetryDelay: Equatable {
        /// The server's `grpc-retry-pushback-ms`.
        case pushback(Int64)
        /// Full-jitter backoff for the `retry`th retry.
        case backoff(retry: Int)
    }

    /// A failed attempt is followed by another after `delay`.
    struct Retry {
        let ended: EndedAttempts
        let delay: RetryDelay
        let error: ProxyError
    }

    /// The response that was held back goes to the caller now (the call commits).
    struct HeldRelease {
        let headers: H2Headers
        let data: ByteBufferQueue
        /// The request headers kept for replay: no longer needed.
        let requestHeaders: H2Headers
    }

    /// What the call gives up when it fails or its caller leaves.
    struct Teardown {
        let ended: EndedAttempts
        /// An upstream stream whose attempt was already told (the response was complete).
        let remainingUpstream: Stream?
        let shedSlot: Int?
        let requestHeaders: H2Headers?
        /// What the caller has seen: nothing yet, response headers, or the whole response.
        let answer: CallerAnswer
    }

    enum CallerAnswer {
        case nothing
        case headers
        case complete
    }

    enum PlaceAction {
        /// Tell `pool` the attempt started, then wait in it for a connection.
        case acquire(Pool, startedAt: Int64, ended: EndedAttempts)
        /// No endpoint to place the call on: fail it with NO_ENDPOINTS (after ending `ended`).
        case noEndpoints(ended: EndedAttempts)
    }

    enum LendAction {
        /// Open the primary's stream with `headers`, then send the replayed body (a
        /// transparent or policy retry), any body that waited, and the request's end.
        case openPrimary(headers: H2Headers, previousAttempts: Int, replay: ReplayBuffer?, end: RequestEnd)
        /// Open a hedge's racing stream with the whole request.
        case openHedge(headers: H2Headers, previousAttempts: Int, replay: ReplayBuffer, end: RequestEnd)
        /// The call no longer wants a stream.
        case decline
    }

    enum PoolFailureAction {
        case ignore
        /// The waiting hedge gave up: tell its pool.
        case hedgeGaveUp(EndedAttempt)
        /// A connect failure: placed again at once.
        case place(PlaceAction)
        case fail(ProxyError)
    }

    enum HedgeAction {
        case none
        /// A hedge waits in `pool` for a connection (its start told to the pool).
        case acquire(Pool, startedAt: Int64)
    }

    enum ResponseHeadersAction {
        /// From a stream the call no longer listens to.
        case ignore
        /// A racer failed fast while another attempt runs: it leaves the race.
        case dropped(EndedAttempts)
        case retry(Retry)
        /// Held back until trailers; the race's losers end.
        case hold(ended: EndedAttempts, answered: Answered?)
        /// Forward them: the call commits (the losers end, the request's headers are released).
        case forward(ended: EndedAttempts, answered: Answered?, requestHeaders: H2Headers?)
    }

    enum HoldAction {
        case forward
        case held
        case release(HeldRelease)
    }

    enum ResponseEndAction {
        case ignore
        case retry(Retry)
        /// Forward the end (after the held response, if one was held).
        case forward(HeldRelease?)
    }

    /// The response is complete: the attempt's outcome, the slot to give back, and the
    /// attempt's round trip (for the method's latency histogram).
    struct Completion {
        let ended: EndedAttempt
        let shedSlot: Int?
        let rtt: Int64?
    }

    enum UpstreamClosedAction {
        /// The call's stream closed without error, or after its response was over.
        case nothingMore
        /// A stream of an earlier attempt: drop what it held.
        case earlierAttempt
        /// A racer ended before it won.
        case racerLeft(EndedAttempts)
        /// The primary failed while racers run: the oldest racer takes its place.
        case racerTookOver(EndedAttempts)
        /// Sent again to another endpoint, the upstream never having processed it.
        case placeAgain(PlaceAction)
        case retry(Retry)
        case fail(ProxyError)
    }

    enum PerTryAction {
        case ignore
        case retry(Retry)
        case fail(ProxyError)
    }
}
