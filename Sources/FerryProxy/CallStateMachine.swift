import FerryUpstream
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore

/// What an attempt's pool must be for the call's state machine: something with an identity
/// (a retry avoids the pools already tried) and a name for errors.
protocol CallAttemptPool: AnyObject {
    var endpointName: String { get }
}

/// The method's retry and hedge settings, fixed when the call starts.
struct CallAttemptPolicy {
    var retryEnabled = false
    var retryOn = FailureStatuses(bits: 0)
    var failureStatuses = FailureStatuses(bits: 0)
    var maxAttempts = 1
    /// Response bytes a unary response may be held back to (0: never held).
    var holdResponseCap = 0
    var perTryTimeoutNanoseconds: Int64?
    /// The hedge's maximum attempts, if the method hedges.
    var hedgeMaxAttempts: Int?
    var isGRPC = false
}

/// The life of one proxied call from its request headers to its end, as a value: which
/// attempts exist, what is kept to send the request again, what the response has done. Events
/// are `mutating` functions that return what the caller must do (open a stream, tell a pool
/// how an attempt went, reset a stream, arm a timer, answer the caller); nothing here does I/O
/// or reads a clock, so every path is tested as a value (CallStateMachineTests). `ProxyCall`
/// is the shell that feeds it events and performs its actions.
///
/// ```
///  awaitingRequestHeaders
///       | start: the request is kept, the first attempt placed
///       |       (startDelayed: an injected fault delay holds it in `delayed` first)
///       v
///    placed <------- connect failure (3x), pool retired, refused stream, GOAWAY
///       | connection lent, stream opened            (placed again elsewhere)
///       v
///    attempting <--------------------- a race left with only its primary
///       |  \ hedge delay: a hedge waits for a connection, then races
///       |   `--------------------> racing (primary, racers, waiting hedge)
///       |                              | answer: the winner goes on, the rest end
///       |<-----------------------------'
///       | answer                 | answer, unary with hold_response
///       |                        v
///       |                     holding -- trailers, or held bytes past the cap --.
///       v                                                                      |
///    committed <---------------------------------------------------------------'
///       | response complete, or fail() from any state
///       v
///    responded -- caller's stream closed (from any state) --> closed
///
///    betweenAttempts: a retryable status, reset, lost stream or per-try timeout before
///    the call committed (from placed, attempting, racing or holding) waits out the
///    backoff here, then is placed again
/// ```
///
/// The cases carry what exists in them: `placed`, `attempting`, `holding` and `committed` the
/// one attempt (its pool, stream, start, answer, round trip), `racing` the racers and the
/// waiting hedge, `holding` the held response, `betweenAttempts` the error a retry would end
/// with, `responded` the stream the request's last bytes may still go to. The request kept
/// for replay and the shedding slot live beside the state (see `request`, which says why).
struct CallStateMachine<Stream: AnyObject, Pool: CallAttemptPool> {

    /// How the request's sender side ended (replayed to a new upstream stream if one opens later).
    enum RequestEnd {
        case open
        case ended
        case trailers(H2Headers)
    }

    // MARK: - State

    private struct Attempt {
        let pool: Pool
        let startedAt: Int64
        var stream: Stream?
        var openedAt: Int64 = 0
        var answered = false
        var rtt: Int64?

        init(pool: Pool, startedAt: Int64) {
            self.pool = pool
            self.startedAt = startedAt
        }

        @inline(__always)
        func ended(_ outcome: UpstreamPool.AttemptOutcome, waiting: Bool = false, keepStream: Bool = false) -> EndedAttempt {
            EndedAttempt(pool: pool, startedAt: startedAt, answered: answered, outcome: outcome, waiting: waiting,
                         stream: keepStream ? nil : stream)
        }

        /// Response headers came: the round trip from the stream's open to when they were read.
        @inline(__always)
        mutating func answer(readAt: Int64, now: () -> Int64) -> Answered? {
            if rtt == nil { rtt = (readAt > openedAt ? readAt : now()) - openedAt }
            guard !answered else { return nil }
            answered = true
            return Answered(pool: pool, startedAt: startedAt)
        }
    }

    /// The request while it may still be sent again.
    private struct Request {
        var headers: H2Headers
        var replay: ReplayBuffer
        /// The next stream opened must first be sent the replayed body.
        var replayOnOpen = false
        var transparentRetries = 0
        /// Attempts counted against `max_attempts` (policy retries and hedges, not transparent ones).
        var countedAttempts = 1
        var hedgesSent = 0
        /// The pools of earlier attempts (a retry prefers another endpoint).
        var triedPools: [ObjectIdentifier] = []
    }

    private struct Race {
        var primary: Attempt
        /// Hedges racing the primary, oldest first.
        var racers: [Attempt] = []
        /// A hedge waiting in its pool for a connection.
        var waitingHedge: Attempt?

        func index(of stream: Stream) -> Int? { racers.firstIndex { $0.stream === stream } }
    }

    private struct Held {
        var headers: H2Headers
        var data = ByteBufferQueue()
        var byteCount = 0
    }

    private enum State {
        case awaitingRequestHeaders
        /// An injected fault delay holds the call before its first attempt (the request is kept).
        case delayed
        /// No attempt in flight: before the first is placed, or during a retry's backoff.
        case betweenAttempts(retryError: ProxyError?)
        /// An attempt waits in its pool for a connection with room.
        case placed(Attempt)
        /// The primary's stream is open, alone; the response has not started.
        case attempting(Attempt)
        /// Hedges race the primary (or one waits for a connection). Boxed: only hedged calls
        /// come here, and the common cases stay small.
        indirect case racing(Race)
        /// The primary answered; its headers and body are held until trailers. Boxed: only
        /// methods with `hold_response` come here.
        indirect case holding(Attempt, Held)
        /// The response is reaching the caller: one attempt, nothing is sent again.
        case committed(Attempt)
        /// The response is over (forwarded, or made here); the request's last bytes may
        /// still go to `upstream`.
        case responded(upstream: Stream?)
        /// The caller's stream closed.
        case closed
    }

    private var state = State.awaitingRequestHeaders

    /// Moves the state out (leaving `.closed` until the transition stores the next one), so a
    /// transition owns its payload instead of copying it and retaining what it holds.
    @inline(__always)
    private mutating func takeState() -> State {
        var taken = State.closed
        swap(&taken, &state)
        return taken
    }
    /// The request kept to be sent again: present from the request headers until the call
    /// commits (or ends) — in `betweenAttempts`, `placed`, `attempting`, `racing`, `holding`.
    /// It lives beside the state rather than in its cases: Swift copies a case's payload (and
    /// retains everything in it) to match on it, and the replay buffer is written on every
    /// request DATA frame. With it in the cases (and the race and the held response unboxed) a
    /// proxied call cost 61,300 instructions; with it here and those two cases boxed, 56,600
    /// (the class before this machine: 53,700; callgrind, the method in docs/ARCHITECTURE.md).
    private var request: Request?
    /// The load-shedding slot (its limit), held from admission until the call is over.
    private var shedSlot: Int?
    private var policy = CallAttemptPolicy()
    private(set) var requestEnd = RequestEnd.open
    /// Attempts placed in a pool (transparent retries, policy retries; not hedges), for the access log.
    private(set) var attemptsPlaced = 0
    /// The pool of the last attempt placed (a retry avoids it; the access log names it).
    private var lastPool: Pool?
    /// The primary attempt's stream while one is open (and, once the response is over, the
    /// stream the request's last bytes go to). Kept beside the state, which also holds it,
    /// because streams ask for it on every frame.
    private(set) var upstream: Stream?

    static var maxTransparentRetries: Int { 3 }
    /// Streams refused by a GOAWAY may be sent again more often: a connection sends one GOAWAY,
    /// so each such refusal means the call met another connection ending before it got to the
    /// stream (seen in storms where every connection ends after a few streams), and the
    /// upstream did no work for it. Then the retry policy decides, as for the other refusals.
    static var maxTransparentRetriesAfterGoAway: Int { 10 }

    init() {}

    // MARK: - Queries

    /// The response headers went to the caller (forwarded or made here).
    var responseStarted: Bool {
        switch state {
        case .committed, .responded, .closed: return true
        default: return false
        }
    }

    /// The response is over, or the caller left.
    var responseEnded: Bool {
        switch state {
        case .responded, .closed: return true
        default: return false
        }
    }

    /// The pool of the current (or last placed) attempt.
    var currentPool: Pool? {
        switch state {
        case .placed(let attempt), .attempting(let attempt), .holding(let attempt, _), .committed(let attempt):
            return attempt.pool
        case .racing(let race):
            return race.primary.pool
        default:
            return lastPool
        }
    }

    var endpointName: String { currentPool?.endpointName ?? "?" }

    /// The pool of the attempt whose stream is `stream` (a racer's too), for its counts.
    func pool(of stream: Stream) -> Pool? {
        switch state {
        case .attempting(let attempt), .holding(let attempt, _), .committed(let attempt):
            return attempt.stream === stream ? attempt.pool : nil
        case .racing(let race):
            if race.primary.stream === stream { return race.primary.pool }
            return race.index(of: stream).map { race.racers[$0].pool }
        default:
            return nil
        }
    }

    /// The attempt is waiting for a connection (request bytes are kept until one opens).
    var isWaitingForStream: Bool {
        switch state {
        case .awaitingRequestHeaders, .delayed, .betweenAttempts, .placed: return true
        default: return false
        }
    }

    /// The error a retry waiting out its backoff will end with if it cannot be placed.
    var retryError: ProxyError? {
        if case .betweenAttempts(let error) = state { return error }
        return nil
    }

    var isHolding: Bool {
        if case .holding = state { return true }
        return false
    }

    /// A hedge's delay may start: the primary runs with no hedge waiting for a connection, the
    /// request is complete and replayable, and the hedge policy allows another attempt.
    var wantsHedgeTimer: Bool {
        guard let maxAttempts = policy.hedgeMaxAttempts, case .ended = requestEnd, let request,
              request.replay.canReplay, 1 + request.hedgesSent < maxAttempts else { return false }
        switch state {
        case .attempting: return true
        case .racing(let race): return race.waitingHedge == nil
        default: return false
        }
    }

    // MARK: - Starting and placing

    /// The request headers arrived and the call was admitted: keep what is needed to send the
    /// request again, and place the first attempt (its start time `arrivedAt`).
    @inline(__always)
    mutating func start(headers: H2Headers, endStream: Bool, replayCap: Int, shedSlot: Int?, policy: CallAttemptPolicy,
                        arrivedAt: Int64, pick: ([ObjectIdentifier]) -> Pool?) -> PlaceAction {
        keep(headers: headers, endStream: endStream, replayCap: replayCap, shedSlot: shedSlot, policy: policy)
        return place(previous: nil, ended: .none, at: arrivedAt, pick: pick)
    }

    /// The request headers arrived and an injected delay holds the call: the request is kept,
    /// the first attempt is placed when the delay is over (`delayElapsed`).
    mutating func startDelayed(headers: H2Headers, endStream: Bool, replayCap: Int, shedSlot: Int?, policy: CallAttemptPolicy) {
        keep(headers: headers, endStream: endStream, replayCap: replayCap, shedSlot: shedSlot, policy: policy)
        state = .delayed
    }

    /// The injected delay is over: place the first attempt.
    mutating func delayElapsed(at now: Int64, pick: ([ObjectIdentifier]) -> Pool?) -> PlaceAction? {
        guard case .delayed = state else { return nil }
        return place(previous: nil, ended: .none, at: now, pick: pick)
    }

    private mutating func keep(headers: H2Headers, endStream: Bool, replayCap: Int, shedSlot: Int?, policy: CallAttemptPolicy) {
        precondition({ if case .awaitingRequestHeaders = state { return true } else { return false } }())
        self.policy = policy
        self.shedSlot = shedSlot
        if endStream { requestEnd = .ended }
        request = Request(headers: headers, replay: ReplayBuffer(cap: replayCap))
    }

    /// Places the next attempt (the request is held).
    @inline(__always)
    private mutating func place(previous: Pool?, ended: EndedAttempts, at now: Int64,
                                pick: ([ObjectIdentifier]) -> Pool?) -> PlaceAction {
        // A call placed again prefers endpoints it has not tried yet. The list is made only
        // then, so a first attempt allocates nothing for it.
        if let previous, request!.triedPools.count < 5 { request!.triedPools.append(ObjectIdentifier(previous)) }
        upstream = nil
        guard let pool = pick(request!.triedPools) else {
            state = .betweenAttempts(retryError: nil)
            return .noEndpoints(ended: ended)
        }
        attemptsPlaced += 1
        lastPool = pool
        state = .placed(Attempt(pool: pool, startedAt: now))
        return .acquire(pool, startedAt: now, ended: ended)
    }

    /// A retry's backoff is over: place the next attempt.
    mutating func backoffElapsed(at now: Int64, pick: ([ObjectIdentifier]) -> Pool?) -> PlaceAction? {
        guard case .betweenAttempts = state else { return nil }
        return place(previous: lastPool, ended: .none, at: now, pick: pick)
    }

    /// The waiting attempt's pool retired (its endpoint left the service): place it elsewhere;
    /// a waiting hedge gives up.
    mutating func poolRetired(at now: Int64, pick: ([ObjectIdentifier]) -> Pool?) -> PoolFailureAction {
        switch state {
        case .racing(var race) where race.waitingHedge != nil:
            let hedge = race.waitingHedge.take()!
            setRace(race)
            return .hedgeGaveUp(hedge.ended(ProxyError.shuttingDown().attemptOutcome))
        case .placed(let attempt):
            return .place(place(previous: attempt.pool, ended: EndedAttempts(primary: attempt.ended(.neutral)), at: now, pick: pick))
        default:
            return .ignore
        }
    }

    /// The pool could not give a connection (connect failure, overload, draining).
    mutating func poolFailed(_ error: ProxyError, at now: Int64, pick: ([ObjectIdentifier]) -> Pool?) -> PoolFailureAction {
        switch state {
        case .racing(var race) where race.waitingHedge != nil:
            let hedge = race.waitingHedge.take()!
            setRace(race)
            return .hedgeGaveUp(hedge.ended(error.attemptOutcome))
        case .placed(let attempt):
            // A connect failure sent nothing: always safe to place again elsewhere, and not counted.
            guard error.isConnectFailure, request!.transparentRetries < Self.maxTransparentRetries else { return .fail(error) }
            request!.transparentRetries += 1
            return .place(place(previous: attempt.pool, ended: EndedAttempts(primary: attempt.ended(.failure)), at: now, pick: pick))
        default:
            return .ignore
        }
    }

    /// A race with no racer and no waiting hedge is the primary alone again.
    private mutating func setRace(_ race: Race) {
        if race.racers.isEmpty && race.waitingHedge == nil {
            state = .attempting(race.primary)
        } else {
            state = .racing(race)
        }
        upstream = race.primary.stream
    }

    // MARK: - Streams

    /// A pool lends a connection with room for one stream.
    @inline(__always)
    mutating func connectionLent() -> LendAction {
        switch state {
        case .placed:
            let request = request!
            return .openPrimary(headers: request.headers, previousAttempts: request.countedAttempts - 1,
                                replay: request.replayOnOpen ? request.replay : nil, end: requestEnd)
        case .racing(let race) where race.waitingHedge != nil:
            let request = request!
            return .openHedge(headers: request.headers, previousAttempts: request.countedAttempts + request.hedgesSent - 1,
                              replay: request.replay, end: requestEnd)
        default:
            return .decline
        }
    }

    /// The primary's stream opened at `now`.
    @inline(__always)
    mutating func primaryOpened(_ stream: Stream, at now: Int64) {
        guard case .placed = state, case .placed(var attempt) = takeState() else { return }
        request!.replayOnOpen = false
        attempt.stream = stream
        attempt.openedAt = now
        upstream = stream
        state = .attempting(attempt)
    }

    /// The waiting hedge's stream opened at `now`: it races the primary.
    mutating func hedgeOpened(_ stream: Stream, at now: Int64) {
        guard case .racing(var race) = state, var hedge = race.waitingHedge.take() else { return }
        hedge.stream = stream
        hedge.openedAt = now
        race.racers.append(hedge)
        setRace(race)
    }

    /// The waiting hedge's stream could not be opened (no time left, or the connection refused).
    mutating func hedgeNotOpened() -> EndedAttempt? {
        guard case .racing(var race) = state, let hedge = race.waitingHedge.take() else { return nil }
        setRace(race)
        return hedge.ended(.neutral)
    }

    /// The hedge delay passed without an answer: place a hedge, if the budget (`withdrawRetry`)
    /// allows and an endpoint not yet tried is there.
    mutating func hedgeDelayPassed(at now: Int64, withdrawRetry: () -> Bool, pick: ([ObjectIdentifier]) -> Pool?) -> HedgeAction {
        guard wantsHedgeTimer, withdrawRetry() else { return .none }
        var race: Race
        switch state {
        case .attempting(let primary): race = Race(primary: primary)
        case .racing(let racing): race = racing
        default: return .none
        }
        var tried = request!.triedPools
        tried.append(ObjectIdentifier(race.primary.pool))
        for racer in race.racers { tried.append(ObjectIdentifier(racer.pool)) }
        guard let pool = pick(tried) else { return .none }
        request!.hedgesSent += 1
        race.waitingHedge = Attempt(pool: pool, startedAt: now)
        setRace(race)
        return .acquire(pool, startedAt: now)
    }

    // MARK: - The request

    /// The caller ended its request; returns the upstream stream to end, if one is open.
    @inline(__always)
    mutating func requestEnded() -> Stream? {
        requestEnd = .ended
        return upstream
    }

    /// The caller ended its request with trailers; returns the upstream stream to send them on.
    mutating func requestTrailers(_ trailers: H2Headers) -> Stream? {
        requestEnd = .trailers(trailers)
        return upstream
    }

    /// Request body went to the upstream stream: keep it for replay while the call may retry.
    @inline(__always)
    mutating func recordSent(_ chunk: ByteBuffer) {
        request?.replay.record(chunk)
    }

    // MARK: - The response

    /// Response headers arrived on `stream` (read at `readAt`). `status` is their `grpc-status`
    /// when they end the stream (Trailers-Only); `withdrawRetry` takes a retry from the budget.
    @inline(__always)
    mutating func responseHeaders(_ headers: H2Headers, from stream: Stream, endStream: Bool, status: Int?,
                                  pushback: GRPCRetryPushback, readAt: Int64, now: () -> Int64,
                                  withdrawRetry: () -> Bool) -> ResponseHeadersAction {
        var attempt: Attempt
        var ended = EndedAttempts.none
        switch state {
        case .attempting where stream === upstream:
            guard case .attempting(let primary) = takeState() else { preconditionFailure() }
            attempt = primary
        case .racing(var race):
            guard race.primary.stream === stream || race.index(of: stream) != nil else { return .ignore }
            let failedFast = endStream && policy.isGRPC && status.map { policy.retryOn.contains($0) } == true
            if failedFast && !race.racers.isEmpty {
                // A retryable failure while another attempt still runs: drop this one, keep waiting.
                let dropped = Self.drop(stream, from: &race, outcome: .failure)
                setRace(race)
                return .dropped(dropped)
            }
            ended = Self.promote(stream, in: &race)
            attempt = race.primary
            upstream = attempt.stream
            state = .attempting(attempt)
        default:
            return .ignore
        }
        if policy.retryEnabled && policy.isGRPC && endStream, let code = status.flatMap(GRPCStatusCode.init(rawValue:)),
           let retry = retry(attempt, ended: ended, status: code, pushback: pushback,
                             error: .upstreamStatus(code, endpoint: attempt.pool.endpointName),
                             outcome: policy.failureStatuses.contains(code.rawValue) ? .failure : .neutral,
                             withdrawRetry: withdrawRetry) {
            // Trailers-Only with a retryable status: the attempt ends unanswered.
            return .retry(retry)
        }
        let answered = attempt.answer(readAt: readAt, now: now)
        if policy.retryEnabled && policy.isGRPC && !endStream && policy.holdResponseCap > 0 {
            state = .holding(attempt, Held(headers: headers))
            return .hold(ended: ended, answered: answered)
        }
        state = .committed(attempt)
        return .forward(ended: ended, answered: answered, requestHeaders: request.take()?.headers)
    }

    /// Whether response DATA from `stream` belongs to the response the caller gets.
    @inline(__always)
    func isCurrentResponse(_ stream: Stream) -> Bool {
        stream === upstream && !responseEnded
    }

    /// Response DATA of the current attempt: forwarded, or held while the response is held
    /// (released, committing the call, once it outgrows the hold cap).
    @inline(__always)
    mutating func responseData(_ data: ByteBuffer) -> HoldAction {
        guard case .holding(let attempt, var held) = state else { return .forward }
        held.data.append(data)
        held.byteCount += data.readableBytes
        if held.byteCount > policy.holdResponseCap {
            state = .committed(attempt)
            return .release(HeldRelease(headers: held.headers, data: held.data, requestHeaders: request.take()!.headers))
        }
        state = .holding(attempt, held)
        return .held
    }

    /// The current attempt's response ended on `stream`, with trailers carrying `status` (nil:
    /// END_STREAM on DATA). A held response is retried if its status is retryable, else released.
    @inline(__always)
    mutating func responseEnded(from stream: Stream, status: Int?, pushback: GRPCRetryPushback,
                                withdrawRetry: () -> Bool) -> ResponseEndAction {
        guard isCurrentResponse(stream) else { return .ignore }
        guard case .holding(let attempt, let held) = state else { return .forward(nil) }
        if let code = status.flatMap(GRPCStatusCode.init(rawValue:)),
           let retry = retry(attempt, ended: .none, status: code, pushback: pushback,
                             error: .upstreamStatus(code, endpoint: attempt.pool.endpointName),
                             outcome: policy.failureStatuses.contains(code.rawValue) ? .failure : .neutral,
                             withdrawRetry: withdrawRetry) {
            return .retry(retry)
        }
        state = .committed(attempt)
        return .forward(HeldRelease(headers: held.headers, data: held.data, requestHeaders: request.take()!.headers))
    }

    /// The response reached the caller whole; `failed` by its status.
    @inline(__always)
    mutating func responseCompleted(failed: Bool) -> Completion? {
        guard case .committed = state, case .committed(let attempt) = takeState() else { return nil }
        lastPool = attempt.pool
        state = .responded(upstream: attempt.stream)
        return Completion(ended: attempt.ended(failed ? .failure : .success(rtt: attempt.rtt), keepStream: true),
                          shedSlot: shedSlot.take(), rtt: attempt.rtt)
    }

    // MARK: - Failures and retries

    /// An upstream stream of the call closed (`error` nil: both sides ended). `withdrawRetry`
    /// takes a retry from the budget; `pick` chooses an endpoint to place the call on again.
    @inline(__always)
    mutating func upstreamClosed(_ stream: Stream, error: H2StreamError?, at now: () -> Int64, withdrawRetry: () -> Bool,
                                 pick: ([ObjectIdentifier]) -> Pool?) -> UpstreamClosedAction {
        // The common end, read without matching the state.
        if error == nil && stream === upstream { return .nothingMore }
        switch state {
        case .attempting(let attempt), .holding(let attempt, _):
            guard attempt.stream === stream else { return .earlierAttempt }
            guard let error else { return .nothingMore }
            return uncommittedStreamFailed(attempt, waitingHedge: nil, error: error, at: now, withdrawRetry: withdrawRetry, pick: pick)
        case .racing(var race):
            if race.primary.stream !== stream {
                guard race.index(of: stream) != nil else { return .earlierAttempt }
                // A racer ended before it won (a reset, a lost connection): it leaves the race.
                let dropped = Self.drop(stream, from: &race, outcome: error == nil ? .neutral : .failure)
                setRace(race)
                return .racerLeft(dropped)
            }
            guard let error else { return .nothingMore }
            if !race.racers.isEmpty {
                // The primary failed while racers run: a racer takes over instead of a retry.
                let dropped = Self.drop(stream, from: &race, outcome: .failure)
                setRace(race)
                return .racerTookOver(dropped)
            }
            return uncommittedStreamFailed(race.primary, waitingHedge: race.waitingHedge, error: error, at: now,
                                           withdrawRetry: withdrawRetry, pick: pick)
        case .committed(let attempt):
            guard attempt.stream === stream else { return .earlierAttempt }
            guard let error else { return .nothingMore }
            if case .connectionLost = error { return .fail(.upstreamLostMidResponse(endpoint: attempt.pool.endpointName)) }
            return .fail(Self.proxyError(for: error, endpoint: attempt.pool.endpointName))
        case .responded(let remaining):
            return remaining === stream ? .nothingMore : .earlierAttempt
        default:
            return .earlierAttempt
        }
    }

    /// The primary's stream failed before the response started: sent again transparently if
    /// the upstream never processed it, else retried by policy if allowed, else the call fails.
    private mutating func uncommittedStreamFailed(_ attempt: Attempt, waitingHedge: Attempt?, error: H2StreamError,
                                                  at now: () -> Int64, withdrawRetry: () -> Bool,
                                                  pick: ([ObjectIdentifier]) -> Pool?) -> UpstreamClosedAction {
        var ended = EndedAttempts.none
        if let waitingHedge { ended.add(waitingHedge.ended(.neutral, waiting: true)) }
        let endpoint = attempt.pool.endpointName
        // A REFUSED_STREAM counts against the endpoint in failure accrual (an endpoint that
        // refuses everything is ejected, not tried first again and again); a GOAWAY's refusal
        // does not (the endpoint is leaving gracefully). Neither spends the retry budget.
        let endpointRefused: Bool?
        switch error {
        case .refusedByGoAway: endpointRefused = false
        case .resetByPeer(H2ErrorCode.refusedStream): endpointRefused = true
        default: endpointRefused = nil
        }
        if let endpointRefused, request!.replay.canReplay,
           request!.transparentRetries < (endpointRefused ? Self.maxTransparentRetries : Self.maxTransparentRetriesAfterGoAway) {
            request!.transparentRetries += 1
            request!.replayOnOpen = true
            ended.primary = attempt.ended(endpointRefused ? .failure : .neutral)
            return .placeAgain(place(previous: attempt.pool, ended: ended, at: now(), pick: pick))
        }
        let code: GRPCStatusCode
        let proxyError = Self.proxyError(for: error, endpoint: endpoint)
        let outcome: UpstreamPool.AttemptOutcome
        switch error {
        case .connectionLost:
            code = .unavailable
            outcome = .failure
        case .resetByPeer(let reset):
            code = GRPCStatusMapping.status(forResetCode: reset.rawValue)
            outcome = .failure
        case .refusedByGoAway:
            // Never processed, like a REFUSED_STREAM: once the transparent retries are spent,
            // the retry policy decides (UNAVAILABLE), with its attempts and budget.
            code = .unavailable
            outcome = .neutral
        case .resetLocally:
            return .fail(proxyError)
        }
        if let retry = retry(attempt, ended: ended, status: code, pushback: .none, error: proxyError,
                             outcome: outcome, withdrawRetry: withdrawRetry) {
            return .retry(retry)
        }
        return .fail(proxyError)
    }

    private static func proxyError(for error: H2StreamError, endpoint: String) -> ProxyError {
        switch error {
        case .connectionLost: return .upstreamLost(endpoint: endpoint)
        case .refusedByGoAway, .resetByPeer(H2ErrorCode.refusedStream): return .upstreamRefused(endpoint: endpoint)
        case .resetByPeer(let code), .resetLocally(let code): return .upstreamReset(endpoint: endpoint, code: code)
        }
    }

    /// The attempt ran past its per-try timeout before the response started (waiting for a
    /// connection, or for the response): retried if allowed, else the call fails.
    mutating func perTryTimeoutExpired(withdrawRetry: () -> Bool) -> PerTryAction {
        guard let timeout = policy.perTryTimeoutNanoseconds else { return .ignore }
        let attempt: Attempt
        var ended = EndedAttempts.none
        var waiting = false
        switch state {
        case .placed(let placed):
            (attempt, waiting) = (placed, true)
        case .attempting(let primary), .holding(let primary, _):
            attempt = primary
        case .racing(let race):
            attempt = race.primary
            if let hedge = race.waitingHedge { ended.add(hedge.ended(.neutral, waiting: true)) }
            for racer in race.racers { ended.add(racer.ended(.neutral)) }
        default:
            return .ignore
        }
        let error = ProxyError.perTryTimeout(timeout, endpoint: attempt.pool.endpointName)
        // The attempt, not the call, ran out of time: that is what a per-try timeout is for, so
        // it is retried whatever the status list says, within the same limits and budget.
        if let retry = retry(attempt, ended: ended, status: .deadlineExceeded, pushback: .none, anyStatus: true,
                             error: error, outcome: .expired(.perTryTimeout), waiting: waiting, withdrawRetry: withdrawRetry) {
            return .retry(retry)
        }
        return .fail(error)
    }

    /// Retries `attempt` if the policy and the budget allow: the attempt (and `ended`) end, and
    /// the call waits out the delay between attempts. nil (state untouched) when not allowed.
    private mutating func retry(_ attempt: Attempt, ended: EndedAttempts, status: GRPCStatusCode,
                                pushback: GRPCRetryPushback, anyStatus: Bool = false, error: ProxyError,
                                outcome: UpstreamPool.AttemptOutcome, waiting: Bool = false,
                                withdrawRetry: () -> Bool) -> Retry? {
        guard policy.retryEnabled, anyStatus || policy.retryOn.contains(status.rawValue), let request,
              request.replay.canReplay, request.countedAttempts < policy.maxAttempts else { return nil }
        if case .refuse = pushback { return nil }
        guard withdrawRetry() else { return nil }
        var ended = ended
        ended.primary = attempt.ended(outcome, waiting: waiting)
        lastPool = attempt.pool
        self.request!.countedAttempts += 1
        self.request!.replayOnOpen = true
        upstream = nil
        state = .betweenAttempts(retryError: error)
        let delay: RetryDelay
        if case .after(let nanoseconds) = pushback {
            delay = .pushback(nanoseconds)
        } else {
            delay = .backoff(retry: self.request!.countedAttempts - 1)
        }
        return Retry(ended: ended, delay: delay, error: error)
    }

    /// The call fails with a proxy-made error (a deadline, a limit, a failed attempt): every
    /// attempt ends, the caller is answered (by the shell) with what `answer` allows.
    mutating func fail(_ error: ProxyError) -> Teardown {
        let racersOutcome: UpstreamPool.AttemptOutcome = error.expiry.map { .expired($0) } ?? .neutral
        return tearDown(primaryOutcome: error.attemptOutcome, othersOutcome: racersOutcome, next: .responded(upstream: nil))
    }

    /// The caller's stream closed; `cancelled` when it went away before the response ended.
    @inline(__always)
    mutating func downstreamClosed(cancelled: Bool) -> Teardown {
        let outcome: UpstreamPool.AttemptOutcome = cancelled ? .expired(.cancelled) : .neutral
        return tearDown(primaryOutcome: outcome, othersOutcome: outcome, next: .closed)
    }

    @inline(__always)
    private mutating func tearDown(primaryOutcome: UpstreamPool.AttemptOutcome, othersOutcome: UpstreamPool.AttemptOutcome,
                                   next: State) -> Teardown {
        var ended = EndedAttempts.none
        var remaining: Stream?
        var answer = CallerAnswer.nothing
        switch takeState() {
        case .awaitingRequestHeaders, .delayed, .betweenAttempts:
            break
        case .placed(let attempt):
            ended.primary = attempt.ended(primaryOutcome, waiting: true)
        case .attempting(let attempt), .holding(let attempt, _):
            ended.primary = attempt.ended(primaryOutcome)
        case .racing(let race):
            ended.primary = race.primary.ended(primaryOutcome)
            if let hedge = race.waitingHedge { ended.add(hedge.ended(.neutral, waiting: true)) }
            for racer in race.racers { ended.add(racer.ended(othersOutcome)) }
        case .committed(let attempt):
            ended.primary = attempt.ended(primaryOutcome)
            answer = .headers
        case .responded(let upstream):
            remaining = upstream
            answer = .complete
        case .closed:
            return Teardown(ended: ended, remainingUpstream: nil, shedSlot: nil, requestHeaders: nil, answer: .complete)
        }
        if let primary = ended.primary { lastPool = primary.pool }
        upstream = nil
        state = next
        return Teardown(ended: ended, remainingUpstream: remaining, shedSlot: shedSlot.take(),
                        requestHeaders: request.take()?.headers, answer: answer)
    }

    // MARK: - Races

    /// Makes `stream` the race's primary; every other attempt (and a waiting hedge) ends.
    private static func promote(_ stream: Stream, in race: inout Race) -> EndedAttempts {
        var ended = EndedAttempts.none
        if race.primary.stream !== stream, let index = race.index(of: stream) {
            let winner = race.racers.remove(at: index)
            ended.primary = race.primary.ended(.expired(.lostRace))
            race.primary = winner
        }
        if let hedge = race.waitingHedge.take() { ended.add(hedge.ended(.neutral, waiting: true)) }
        for racer in race.racers { ended.add(racer.ended(.expired(.lostRace))) }
        race.racers.removeAll()
        return ended
    }

    /// An attempt that is not the winner leaves the race; a primary that leaves is replaced by
    /// the oldest racer (which keeps racing the rest).
    private static func drop(_ stream: Stream, from race: inout Race, outcome: UpstreamPool.AttemptOutcome) -> EndedAttempts {
        if race.primary.stream === stream {
            let primary = race.primary
            race.primary = race.racers.removeFirst()
            return EndedAttempts(primary: primary.ended(outcome))
        }
        guard let index = race.index(of: stream) else { return .none }
        return EndedAttempts(primary: nil, others: [race.racers.remove(at: index).ended(outcome)])
    }
}

extension UpstreamPool: CallAttemptPool {}
