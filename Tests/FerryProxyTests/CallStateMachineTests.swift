@testable import FerryProxy
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore
import XCTest

/// The call's state machine as a value: each scenario feeds it events and asserts the exact
/// sequence of actions it answers with. No streams, pools, clock or loop: the streams and pools
/// are names, time is a number, the budget a counter.
final class CallStateMachineTests: XCTestCase {
    // MARK: - Placing and forwarding

    func testAPlainCallIsPlacedOpenedAnsweredAndCompleted() {
        let call = Scenario()
        call.start()
        call.lend()
        call.opened("s1")
        call.headers(from: "s1")
        call.complete()
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=ended",
            "forward answered=p1 releasing request headers",
            "complete: p1 success(rtt 5) answered slot=none",
        ])
        XCTAssertEqual(call.picks, [[]], "a first attempt avoids nothing")
        XCTAssertTrue(call.machine.responseEnded)
    }

    func testAServiceWithNoEndpointsFailsAndGivesBackItsSlotAndHeaders() {
        let call = Scenario(pools: [])
        call.start(slot: 8)
        call.fail(.noEndpoints(service: "s"))
        XCTAssertEqual(call.log, ["no endpoints", "teardown answer=nothing slot=8 headers"])
    }

    // MARK: - Transparent retries

    /// A refusal the upstream never processed goes elsewhere at once (not a policy retry, no
    /// budget), the refusing endpoint charged; a GOAWAY's refusal charges nobody.
    func testRefusalsAreSentAgainWithoutTheBudget() {
        let call = Scenario(policy: .noRetries)
        call.budget = 0
        call.start()
        call.lend()
        call.opened("s1")
        call.closed("s1", .resetByPeer(H2ErrorCode.refusedStream))
        call.lend()
        call.opened("s2")
        call.closed("s2", .refusedByGoAway)
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=ended",
            "place again: end p1 failure reset s1; acquire p2 at 0",
            "open primary previous=0 replay=0 bytes end=ended",
            "place again: end p2 neutral reset s2; acquire p3 at 0",
        ])
        XCTAssertEqual(call.picks, [[], ["p1"], ["p1", "p2"]])
    }

    /// Three refused streams, then the retry policy decides; without retries the call fails.
    func testRefusedStreamsAreSentAgainThreeTimesThenTheCallFails() {
        let call = Scenario(policy: .noRetries)
        call.start()
        for n in 1...4 {
            call.lend()
            call.opened("s\(n)")
            call.closed("s\(n)", .resetByPeer(H2ErrorCode.refusedStream))
        }
        XCTAssertEqual(call.log.last, "fail: ferry: upstream p1 refused the stream")
        XCTAssertEqual(call.log.filter { $0.hasPrefix("place again") }.count, 3)
    }

    /// A connect failure sent nothing: placed again, up to three times, each counted against
    /// the endpoint that could not be reached.
    func testConnectFailuresArePlacedAgainThreeTimes() {
        let call = Scenario()
        call.start()
        for _ in 1...4 { call.poolFailed(.connectFailed(endpoint: "p", reason: "refused")) }
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "place: end p1 failure; acquire p2 at 0",
            "place: end p2 failure; acquire p3 at 0",
            "place: end p3 failure; acquire p1 at 0",
            "fail: ferry: cannot connect to p: refused",
        ])
    }

    // MARK: - Retries by policy

    /// A Trailers-Only retryable status with pushback: the attempt ends unanswered (a failure:
    /// the route counts UNAVAILABLE as one), the retry
    /// waits for the pushback, goes to an endpoint not tried, with the replayed body.
    func testATrailersOnlyRetryableStatusIsRetriedAfterThePushback() {
        let call = Scenario()
        call.start(endStream: false)
        call.lend()
        call.opened("s1")
        call.sent(bytes: 10)
        call.end()
        call.headers(from: "s1", endStream: true, status: 14, pushback: .after(nanoseconds: 300))
        call.backoffElapsed()
        call.lend()
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=open",
            "end upstream s1",
            "retry after pushback 300: end p1 failure reset s1",
            "acquire p2 at 0",
            "open primary previous=1 replay=10 bytes end=ended",
        ])
        XCTAssertEqual(call.budget, 9)
        XCTAssertEqual(call.machine.retryError?.grpcStatus, nil, "placed: no retry pending")
    }

    /// Without budget, or with the attempts spent, the failure goes to the caller.
    func testARetryNeedsBudgetAndAttemptsLeft() {
        let poor = Scenario()
        poor.budget = 0
        poor.start()
        poor.lend()
        poor.opened("s1")
        poor.headers(from: "s1", endStream: true, status: 14)
        XCTAssertEqual(poor.log.last, "forward answered=p1 releasing request headers")

        var once = CallAttemptPolicy.retrying
        once.maxAttempts = 2
        let call = Scenario(policy: once)
        call.start()
        call.lend()
        call.opened("s1")
        call.headers(from: "s1", endStream: true, status: 14)
        call.backoffElapsed()
        call.lend()
        call.opened("s2")
        call.headers(from: "s2", endStream: true, status: 14)
        XCTAssertEqual(call.log.filter { $0.hasPrefix("retry") }, ["retry after backoff 1: end p1 failure reset s1"])
        XCTAssertEqual(call.log.last, "forward answered=p2 releasing request headers")
    }

    /// A status the policy does not retry, and a pushback that refuses, are forwarded.
    func testANonRetryableStatusOrARefusingPushbackIsForwarded() {
        let call = Scenario()
        call.start()
        call.lend()
        call.opened("s1")
        call.headers(from: "s1", endStream: true, status: 3)
        XCTAssertEqual(call.log.last, "forward answered=p1 releasing request headers")
        let refused = Scenario()
        refused.start()
        refused.lend()
        refused.opened("s1")
        refused.headers(from: "s1", endStream: true, status: 14, pushback: .refuse)
        XCTAssertEqual(refused.log.last, "forward answered=p1 releasing request headers")
        XCTAssertEqual(refused.budget, 10, "nothing withdrawn")
    }

    /// A per-try timeout ends the attempt (while it waits for a connection, it leaves the
    /// pool's queue) and retries whatever the status list says; once committed it does nothing.
    func testAPerTryTimeoutRetriesUntilTheCallCommits() {
        let call = Scenario()
        call.start()
        call.perTry()
        call.backoffElapsed()
        call.lend()
        call.opened("s1")
        call.perTry()
        call.backoffElapsed()
        call.lend()
        call.opened("s2")
        call.headers(from: "s2")
        call.perTry()
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "retry after backoff 1: end p1 expired(perTryTimeout) dequeue",
            "acquire p2 at 0",
            "open primary previous=1 replay=0 bytes end=ended",
            "retry after backoff 2: end p2 expired(perTryTimeout) reset s1",
            "acquire p3 at 0",
            "open primary previous=2 replay=0 bytes end=ended",
            "forward answered=p3 releasing request headers",
            "per-try: ignore",
        ])
    }

    /// A reset maps to a gRPC status: retried if the policy lists it (UNAVAILABLE), else the
    /// call fails; once committed, a reset fails the call.
    func testAStreamErrorBeforeTheResponseIsRetriedAndAfterItFails() {
        let call = Scenario()
        call.start()
        call.lend()
        call.opened("s1")
        call.closed("s1", .connectionLost)
        call.backoffElapsed()
        call.lend()
        call.opened("s2")
        call.headers(from: "s2")
        call.closed("s2", .resetByPeer(H2ErrorCode.internalError))
        XCTAssertEqual(call.log[2], "retry after backoff 1: end p1 failure reset s1")
        XCTAssertEqual(call.log.last, "fail: ferry: upstream p2 reset the stream (INTERNAL_ERROR)")
    }

    /// A connection lost after the response started cannot be retried by anyone; the error
    /// says so, so the caller's log tells it apart from a loss a retry policy could have saved.
    func testAConnectionLostMidResponseSaysSo() {
        let call = Scenario()
        call.start()
        call.lend()
        call.opened("s1")
        call.headers(from: "s1")
        call.closed("s1", .connectionLost)
        XCTAssertEqual(call.log.last, "fail: ferry: connection to upstream p1 was lost mid-response (not retried: the response had started)")
    }

    // MARK: - Holding a unary response

    /// Held headers and body wait for the trailers: a retryable status there retries (nothing
    /// reached the caller); past the hold cap the response is released and the call commits.
    func testAHeldResponseIsRetriedOnItsTrailersOrReleasedPastTheCap() {
        var holding = CallAttemptPolicy.retrying
        holding.holdResponseCap = 16
        let call = Scenario(policy: holding)
        call.start()
        call.lend()
        call.opened("s1")
        call.headers(from: "s1")
        call.data(8)
        call.trailers(from: "s1", status: 14)
        call.backoffElapsed()
        call.lend()
        call.opened("s2")
        call.headers(from: "s2")
        call.data(8)
        call.data(9)
        call.data(1)
        call.trailers(from: "s2", status: 0)
        call.complete()
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=ended",
            "hold answered=p1",
            "held",
            "retry after backoff 1: end p1 failure answered reset s1",
            "acquire p2 at 0",
            "open primary previous=1 replay=0 bytes end=ended",
            "hold answered=p2",
            "held",
            "release 17 bytes, releasing request headers",
            "forward data",
            "forward end",
            "complete: p2 success(rtt 5) answered slot=none",
        ])
    }

    // MARK: - Hedging

    /// After the delay a hedge waits on an endpoint not tried; it races; the first answer wins
    /// and the other attempt is cancelled as the race's loser. Its later close is an earlier
    /// attempt's.
    func testAHedgeRacesThePrimaryAndTheFirstAnswerWins() {
        let call = Scenario(policy: .hedging)
        call.start(endStream: false)
        call.lend()
        call.opened("s1")
        XCTAssertFalse(call.machine.wantsHedgeTimer, "not before the request is complete")
        call.end()
        XCTAssertTrue(call.machine.wantsHedgeTimer)
        call.hedgeDelay()
        XCTAssertFalse(call.machine.wantsHedgeTimer, "one hedge waits at a time")
        call.lend()
        call.hedgeOpened("h1")
        call.headers(from: "h1")
        call.closed("s1", .resetLocally(H2ErrorCode.cancel))
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=open",
            "end upstream s1",
            "hedge: acquire p2 at 0",
            "open hedge previous=1 replay=0 bytes end=ended",
            "forward answered=p2 releasing request headers; end p1 expired(lostRace) reset s1",
            "earlier attempt",
        ])
        XCTAssertEqual(call.picks.last, ["p1"])
    }

    /// A racer's fast retryable failure leaves the race (the other goes on); the primary's
    /// failure while a racer runs hands the race to the racer, not to a retry.
    func testARaceLosesItsFailuresWithoutRetrying() {
        let call = Scenario(policy: .hedging)
        call.start()
        call.lend()
        call.opened("s1")
        call.hedgeDelay()
        call.lend()
        call.hedgeOpened("h1")
        call.headers(from: "h1", endStream: true, status: 14)
        call.hedgeDelay()
        call.lend()
        call.hedgeOpened("h2")
        call.closed("s1", .connectionLost)
        call.headers(from: "h2")
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=ended",
            "hedge: acquire p2 at 0",
            "open hedge previous=1 replay=0 bytes end=ended",
            "dropped: end p2 failure reset h1",
            "hedge: acquire p2 at 0",        // the racer that left is no longer among the tried
            "open hedge previous=2 replay=0 bytes end=ended",
            "racer took over: end p1 failure reset s1",
            "forward answered=p2 releasing request headers",
        ])
        XCTAssertEqual(call.budget, 8, "each hedge took one retry from the budget")
    }

    /// The defect issue 23 suspected: a primary retried while a hedge waits for a connection
    /// must take the hedge out of its pool's queue, or the call waits in two pools.
    func testARetryTakesAWaitingHedgeOutOfItsPool() {
        let call = Scenario(policy: .hedging)
        call.start()
        call.lend()
        call.opened("s1")
        call.hedgeDelay()
        call.perTry()
        call.lend()
        XCTAssertEqual(call.log, [
            "acquire p1 at 0",
            "open primary previous=0 replay=none end=ended",
            "hedge: acquire p2 at 0",
            "retry after backoff 1: end p1 expired(perTryTimeout) reset s1; end p2 neutral dequeue",
            "decline",
        ])
    }

    /// No hedge without budget; a hedge that gives up waiting ends neutral or as its error says.
    func testAHedgeNeedsBudgetAndMayGiveUp() {
        let call = Scenario(policy: .hedging)
        call.budget = 0
        call.start()
        call.lend()
        call.opened("s1")
        call.hedgeDelay()
        call.budget = 1
        call.hedgeDelay()
        call.poolFailed(.connectFailed(endpoint: "p2", reason: "refused"))
        XCTAssertEqual(Array(call.log.suffix(3)), ["hedge: none", "hedge: acquire p2 at 0", "hedge gave up: end p2 failure"])
    }

    // MARK: - Ending

    /// A failure after the response started can only end it (trailers or a reset): every live
    /// attempt ends as the error says; the slot comes back.
    func testAFailureAfterCommitEndsTheAttemptAndAnswersWithTrailers() {
        let call = Scenario()
        call.start(slot: 4)
        call.lend()
        call.opened("s1")
        call.headers(from: "s1")
        call.fail(.streamIdle(1_000_000, policyOrigin: "x"))
        XCTAssertEqual(call.log.last, "teardown answer=headers slot=4: end p1 expired(deadline) answered reset s1")
        XCTAssertTrue(call.machine.responseEnded)
    }

    /// The caller leaving ends every attempt as cancelled (a waiting one leaves the queue).
    func testTheCallerLeavingCancelsEveryAttempt() {
        let call = Scenario(policy: .hedging)
        call.start()
        call.lend()
        call.opened("s1")
        call.hedgeDelay()
        call.lend()
        call.hedgeOpened("h1")
        call.downstreamClosed(cancelled: true)
        XCTAssertEqual(call.log.last,
                       "teardown answer=nothing slot=none headers: end p1 expired(cancelled) reset s1; end p2 expired(cancelled) reset h1")
        let waiting = Scenario()
        waiting.start()
        waiting.downstreamClosed(cancelled: true)
        XCTAssertEqual(waiting.log.last, "teardown answer=nothing slot=none headers: end p1 expired(cancelled) dequeue")
    }

    /// After the response is complete, the request's last bytes still go upstream, and the
    /// caller's close gives up only that stream.
    func testACompletedResponseLeavesTheUpstreamToTheRequestsEnd() {
        let call = Scenario()
        call.start(endStream: false)
        call.lend()
        call.opened("s1")
        call.headers(from: "s1")
        call.trailers(from: "s1", status: 0)
        call.complete()
        call.end()
        call.downstreamClosed(cancelled: false)
        XCTAssertEqual(Array(call.log.suffix(3)), [
            "complete: p1 success(rtt 5) answered slot=none",
            "end upstream s1",
            "teardown answer=complete slot=none remaining s1",
        ])
    }
}

// MARK: - The scenario driver

private final class FakeStream {
    let name: String
    init(_ name: String) { self.name = name }
}

private final class FakePool: CallAttemptPool {
    let endpointName: String
    init(_ name: String) { endpointName = name }
}

extension CallAttemptPolicy {
    fileprivate static var noRetries: CallAttemptPolicy { CallAttemptPolicy(isGRPC: true) }
    fileprivate static var retrying: CallAttemptPolicy {
        CallAttemptPolicy(retryEnabled: true, retryOn: FailureStatuses(bits: 1 << 14), failureStatuses: FailureStatuses(bits: 1 << 14),
                          maxAttempts: 3, perTryTimeoutNanoseconds: 100, isGRPC: true)
    }
    fileprivate static var hedging: CallAttemptPolicy {
        var policy = retrying
        policy.hedgeMaxAttempts = 3
        return policy
    }
}

/// Feeds one machine events and writes down each answer as a line.
private final class Scenario {
    typealias Machine = CallStateMachine<FakeStream, FakePool>
    var machine = Machine()
    let pools: [FakePool]
    let policy: CallAttemptPolicy
    var budget = 10
    var now: Int64 = 0
    var log: [String] = []
    /// The pools each pick was asked to avoid.
    var picks: [[String]] = []
    private var streams: [String: FakeStream] = [:]

    init(pools: [String] = ["p1", "p2", "p3"], policy: CallAttemptPolicy = .retrying) {
        self.pools = pools.map(FakePool.init)
        self.policy = policy
    }

    private func stream(_ name: String) -> FakeStream {
        if let stream = streams[name] { return stream }
        let stream = FakeStream(name)
        streams[name] = stream
        return stream
    }

    private func pick(_ avoiding: [ObjectIdentifier]) -> FakePool? {
        picks.append(pools.filter { avoiding.contains(ObjectIdentifier($0)) }.map(\.endpointName))
        return pools.first { !avoiding.contains(ObjectIdentifier($0)) } ?? pools.first
    }

    private func withdraw() -> Bool {
        guard budget > 0 else { return false }
        budget -= 1
        return true
    }

    func start(endStream: Bool = true, slot: Int? = nil) {
        log.append(describe(machine.start(headers: H2Headers([(":path", "/p.S/M")]), endStream: endStream, replayCap: 1024,
                                          shedSlot: slot, policy: policy, arrivedAt: now, pick: pick)))
    }

    func lend() {
        switch machine.connectionLent() {
        case .decline: log.append("decline")
        case .openPrimary(_, let previous, let replay, let end):
            log.append("open primary previous=\(previous) replay=\(replay.map { "\($0.byteCount) bytes" } ?? "none") end=\(describe(end))")
        case .openHedge(_, let previous, let replay, let end):
            log.append("open hedge previous=\(previous) replay=\(replay.byteCount) bytes end=\(describe(end))")
        }
    }

    func opened(_ name: String) { machine.primaryOpened(stream(name), at: now) }
    func hedgeOpened(_ name: String) { machine.hedgeOpened(stream(name), at: now) }

    func sent(bytes: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes)
        buffer.writeRepeatingByte(0, count: bytes)
        machine.recordSent(buffer)
    }

    func end() {
        if let upstream = machine.requestEnded() { log.append("end upstream \(upstream.name)") }
    }

    func headers(from name: String, endStream: Bool = false, status: Int? = nil, pushback: GRPCRetryPushback = .none) {
        let action = machine.responseHeaders(H2Headers([(":status", "200")]), from: stream(name), endStream: endStream,
                                             status: status, pushback: pushback, readAt: now + 5, now: { self.now },
                                             withdrawRetry: withdraw)
        switch action {
        case .ignore: log.append("ignore")
        case .dropped(let ended): log.append("dropped: " + describe(ended))
        case .retry(let retry): log.append(describe(retry))
        case .hold(let ended, let answered):
            log.append("hold answered=\(answered?.pool.endpointName ?? "-")" + suffix(ended))
        case .forward(let ended, let answered, let headers):
            log.append("forward answered=\(answered?.pool.endpointName ?? "-")\(headers != nil ? " releasing request headers" : "")" + suffix(ended))
        }
    }

    func data(_ bytes: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes)
        buffer.writeRepeatingByte(0, count: bytes)
        switch machine.responseData(buffer) {
        case .forward: log.append("forward data")
        case .held: log.append("held")
        case .release(let held):
            var data = held.data
            var bytes = 0
            while let chunk = data.popFirst() { bytes += chunk.readableBytes }
            log.append("release \(bytes) bytes, releasing request headers")
        }
    }

    func trailers(from name: String, status: Int?) {
        switch machine.responseEnded(from: stream(name), status: machine.isHolding ? status : nil, pushback: .none,
                                     withdrawRetry: withdraw) {
        case .ignore: log.append("ignore")
        case .retry(let retry): log.append(describe(retry))
        case .forward(let held): log.append(held.map { _ in "release held, forward end" } ?? "forward end")
        }
    }

    func complete(failed: Bool = false) {
        guard let completion = machine.responseCompleted(failed: failed) else { return log.append("complete: nothing") }
        log.append("complete: \(describe(completion.ended).dropFirst(4)) slot=\(completion.shedSlot.map(String.init) ?? "none")")
    }

    func closed(_ name: String, _ error: H2StreamError?) {
        switch machine.upstreamClosed(stream(name), error: error, at: { self.now }, withdrawRetry: withdraw, pick: pick) {
        case .nothingMore: log.append("nothing more")
        case .earlierAttempt: log.append("earlier attempt")
        case .racerLeft(let ended): log.append("racer left: " + describe(ended))
        case .racerTookOver(let ended): log.append("racer took over: " + describe(ended))
        case .placeAgain(let placement): log.append("place again: " + describe(placement))
        case .retry(let retry): log.append(describe(retry))
        case .fail(let error): log.append("fail: \(error.message)")
        }
    }

    func poolFailed(_ error: ProxyError) {
        switch machine.poolFailed(error, at: now, pick: pick) {
        case .ignore: log.append("ignore")
        case .hedgeGaveUp(let ended): log.append("hedge gave up: " + describe(ended))
        case .place(let placement): log.append("place: " + describe(placement))
        case .fail(let error): log.append("fail: \(error.message)")
        }
    }

    func perTry() {
        switch machine.perTryTimeoutExpired(withdrawRetry: withdraw) {
        case .ignore: log.append("per-try: ignore")
        case .retry(let retry): log.append(describe(retry))
        case .fail(let error): log.append("fail: \(error.message)")
        }
    }

    func backoffElapsed() {
        if let placement = machine.backoffElapsed(at: now, pick: pick) { log.append(describe(placement)) } else { log.append("not backing off") }
    }

    func hedgeDelay() {
        switch machine.hedgeDelayPassed(at: now, withdrawRetry: withdraw, pick: pick) {
        case .none: log.append("hedge: none")
        case .acquire(let pool, let at): log.append("hedge: acquire \(pool.endpointName) at \(at)")
        }
    }

    func fail(_ error: ProxyError) { log.append(describe(machine.fail(error))) }
    func downstreamClosed(cancelled: Bool) { log.append(describe(machine.downstreamClosed(cancelled: cancelled))) }

    // MARK: Lines

    private func describe(_ placement: Machine.PlaceAction) -> String {
        switch placement {
        case .acquire(let pool, let at, let ended):
            let prefix = describe(ended)
            return (prefix.isEmpty ? "" : prefix + "; ") + "acquire \(pool.endpointName) at \(at)"
        case .noEndpoints(let ended):
            return "no endpoints" + suffix(ended)
        }
    }

    private func describe(_ retry: Machine.Retry) -> String {
        let delay: String
        switch retry.delay {
        case .pushback(let ns): delay = "pushback \(ns)"
        case .backoff(let n): delay = "backoff \(n)"
        }
        return "retry after \(delay): " + describe(retry.ended)
    }

    private func describe(_ teardown: Machine.Teardown) -> String {
        var line = "teardown answer=\(teardown.answer) slot=\(teardown.shedSlot.map(String.init) ?? "none")"
        if teardown.requestHeaders != nil { line += " headers" }
        if let remaining = teardown.remainingUpstream { line += " remaining \(remaining.name)" }
        let ended = describe(teardown.ended)
        return ended.isEmpty ? line : line + ": " + ended
    }

    private func suffix(_ ended: Machine.EndedAttempts) -> String {
        let text = describe(ended)
        return text.isEmpty ? "" : "; " + text
    }

    private func describe(_ ended: Machine.EndedAttempts) -> String {
        ((ended.primary.map { [$0] } ?? []) + (ended.others ?? [])).map(describe).joined(separator: "; ")
    }

    private func describe(_ ended: Machine.EndedAttempt) -> String {
        var line = "end \(ended.pool.endpointName) "
        switch ended.outcome {
        case .success(let rtt): line += "success(rtt \(rtt.map(String.init) ?? "none"))"
        case .failure: line += "failure"
        case .expired(let expiry): line += "expired(\(expiry))"
        case .neutral: line += "neutral"
        }
        if ended.answered { line += " answered" }
        if ended.waiting { line += " dequeue" }
        if let stream = ended.stream { line += " reset \(stream.name)" }
        return line
    }

    private func describe(_ end: Machine.RequestEnd) -> String {
        switch end {
        case .open: return "open"
        case .ended: return "ended"
        case .trailers: return "trailers"
        }
    }
}
