import FerryPolicy
import FerryXDS
import XCTest

private let second: Int64 = 1_000_000_000

final class ADSStateMachineTests: XCTestCase {
    private func requests(_ actions: [ADSAction]) -> [ADSRequest] {
        actions.compactMap { if case .send(let request) = $0 { request } else { nil } }
    }

    /// A machine with LDS and CDS by wildcard and EDS for two clusters, its first stream open.
    private func streaming(seed: UInt64 = 1) -> (ADSStateMachine, [ADSAction]) {
        var machine = ADSStateMachine(seed: seed)
        XCTAssertEqual(machine.subscribe(.listener, to: .all, now: 0), [])
        XCTAssertEqual(machine.subscribe(.cluster, to: .all, now: 0), [])
        XCTAssertEqual(machine.subscribe(.clusterLoadAssignment, to: .named(["b", "a"]), now: 0), [])
        let actions = machine.start(now: 0)
        return (machine, actions)
    }

    func testTheFirstStreamAsksForEverySubscriptionAndOnlyTheFirstRequestCarriesTheNode() {
        let (machine, actions) = streaming()
        XCTAssertEqual(actions.first, .openStream)
        XCTAssertEqual(requests(actions), [
            ADSRequest(type: .listener, versionInfo: "", resourceNames: [], responseNonce: "", includesNode: true),
            ADSRequest(type: .cluster, versionInfo: "", resourceNames: [], responseNonce: ""),
            ADSRequest(type: .clusterLoadAssignment, versionInfo: "", resourceNames: ["a", "b"], responseNonce: ""),
        ])
        XCTAssertTrue(machine.isStreaming)
    }

    func testAnAcceptedResponseIsAppliedThenACKedWithItsVersionAndNonce() {
        var (machine, _) = streaming()
        let actions = machine.receive(ADSResponse(typeURL: XDSResourceType.cluster.typeURL, versionInfo: "7",
                                                  nonce: "n1", resourceNames: ["a", "b"]), now: second)
        XCTAssertEqual(actions, [
            .apply(ADSResourceUpdate(type: .cluster, versionInfo: "7", updated: ["a", "b"], removed: [])),
            .send(ADSRequest(type: .cluster, versionInfo: "7", resourceNames: [], responseNonce: "n1")),
        ])
        XCTAssertEqual(machine.acceptedVersion(of: .cluster), "7")
    }

    func testAResponseWithAProblemIsNACKedWithTheLastGoodVersionAndNothingOfItApplied() {
        var (machine, _) = streaming()
        let cds = XDSResourceType.cluster.typeURL
        _ = machine.receive(ADSResponse(typeURL: cds, versionInfo: "1", nonce: "n1", resourceNames: ["a"]), now: 0)
        let actions = machine.receive(ADSResponse(typeURL: cds, versionInfo: "2", nonce: "n2", resourceNames: ["a", "b"],
                                                  problems: ["cluster \"b\": lb_policy MAGLEV is not supported"]), now: 0)
        let detail = "CDS version \"2\" rejected: cluster \"b\": lb_policy MAGLEV is not supported"
        XCTAssertEqual(actions, [
            .rejected(type: cds, nonce: "n2", errorDetail: detail),
            .send(ADSRequest(type: .cluster, versionInfo: "1", resourceNames: [], responseNonce: "n2", errorDetail: detail)),
        ])
        XCTAssertEqual(machine.acceptedVersion(of: .cluster), "1")

        // The next good version is taken, and what it leaves out of the complete set is removed.
        let next = machine.receive(ADSResponse(typeURL: cds, versionInfo: "3", nonce: "n3", resourceNames: ["b"]), now: 0)
        XCTAssertEqual(next.first, .apply(ADSResourceUpdate(type: .cluster, versionInfo: "3", updated: ["b"], removed: ["a"])))
        XCTAssertEqual(requests(next).first?.errorDetail, nil)
    }

    func testAResourceNamedTwiceInOneResponseIsNACKed() {
        var (machine, _) = streaming()
        let actions = machine.receive(ADSResponse(typeURL: XDSResourceType.listener.typeURL, versionInfo: "1",
                                                  nonce: "n", resourceNames: ["l", "l"]), now: 0)
        XCTAssertEqual(requests(actions).first?.errorDetail, "LDS version \"1\" rejected: resource \"l\" appears more than once")
        XCTAssertEqual(requests(actions).first?.versionInfo, "")
        XCTAssertFalse(actions.contains { if case .apply = $0 { true } else { false } })
    }

    func testEndpointResponsesCarryOnlyWhatChangedAndWhatNobodyAskedForIsNotTaken() {
        var (machine, _) = streaming()
        let eds = XDSResourceType.clusterLoadAssignment.typeURL
        _ = machine.receive(ADSResponse(typeURL: eds, versionInfo: "1", nonce: "n1", resourceNames: ["a"]), now: 0)
        let actions = machine.receive(ADSResponse(typeURL: eds, versionInfo: "2", nonce: "n2", resourceNames: ["b", "zzz"]), now: 0)
        XCTAssertEqual(actions.first, .apply(ADSResourceUpdate(type: .clusterLoadAssignment, versionInfo: "2", updated: ["b"], removed: [])))
        XCTAssertEqual(requests(actions), [ADSRequest(type: .clusterLoadAssignment, versionInfo: "2", resourceNames: ["a", "b"], responseNonce: "n2")])
    }

    func testANamedListenerLeftOutOfAResponseDoesNotExist() {
        var machine = ADSStateMachine(seed: 1)
        _ = machine.subscribe(.listener, to: .named(["in", "out"]), now: 0)
        _ = machine.start(now: 0)
        let actions = machine.receive(ADSResponse(typeURL: XDSResourceType.listener.typeURL, versionInfo: "1",
                                                  nonce: "n", resourceNames: ["in"]), now: second)
        XCTAssertEqual(actions.first, .apply(ADSResourceUpdate(type: .listener, versionInfo: "1", updated: ["in"], removed: ["out"])))
        // It no longer waits for "out": no timeout is pending.
        XCTAssertNil(machine.nextWakeUp)
    }

    func testChangingASubscriptionOnAnOpenStreamSendsItWithTheCurrentVersionAndNonce() {
        var (machine, _) = streaming()
        let eds = XDSResourceType.clusterLoadAssignment.typeURL
        _ = machine.receive(ADSResponse(typeURL: eds, versionInfo: "4", nonce: "n4", resourceNames: ["a", "b"]), now: 0)
        XCTAssertEqual(machine.subscribe(.clusterLoadAssignment, to: .named(["a", "b"]), now: 0), [], "unchanged: nothing to send")
        XCTAssertEqual(requests(machine.subscribe(.clusterLoadAssignment, to: .named(["c", "a"]), now: 0)),
                       [ADSRequest(type: .clusterLoadAssignment, versionInfo: "4", resourceNames: ["a", "c"], responseNonce: "n4")])
        // A type subscribed for the first time on the open stream: no node (it went first).
        XCTAssertEqual(requests(machine.subscribe(.routeConfiguration, to: .named(["r"]), now: 0)),
                       [ADSRequest(type: .routeConfiguration, versionInfo: "", resourceNames: ["r"], responseNonce: "")])
    }

    func testAResourceThatDoesNotComeWithinTheTimeoutIsMissingAndOneThatCameIsNot() {
        var (machine, _) = streaming()
        XCTAssertEqual(machine.nextWakeUp, 15 * second)
        _ = machine.receive(ADSResponse(typeURL: XDSResourceType.clusterLoadAssignment.typeURL, versionInfo: "1",
                                        nonce: "n", resourceNames: ["a"]), now: 2 * second)
        XCTAssertEqual(machine.timerFired(now: 15 * second - 1), [])
        XCTAssertEqual(machine.timerFired(now: 15 * second), [.resourcesDoNotExist(.clusterLoadAssignment, ["b"])])
        XCTAssertNil(machine.nextWakeUp)
        // Added later, it gets its own 15 s from the request that asks for it.
        _ = machine.subscribe(.clusterLoadAssignment, to: .named(["a", "b", "c"]), now: 20 * second)
        XCTAssertEqual(machine.nextWakeUp, 35 * second)
        XCTAssertEqual(machine.timerFired(now: 35 * second), [.resourcesDoNotExist(.clusterLoadAssignment, ["c"])])
    }

    func testTheResourceClockStopsWhileTheStreamIsDownAndRestartsWithTheNextStream() {
        var (machine, _) = streaming()
        _ = machine.streamClosed(now: 10 * second)
        let reconnectAt = try! XCTUnwrap(machine.nextWakeUp)
        XCTAssertLessThan(reconnectAt, 15 * second, "the reconnect, not a resource timeout, is next")
        XCTAssertEqual(machine.timerFired(now: 100 * second).first, .openStream)
        XCTAssertEqual(machine.nextWakeUp, 115 * second)
        XCTAssertEqual(machine.timerFired(now: 115 * second), [.resourcesDoNotExist(.clusterLoadAssignment, ["a", "b"])])
    }

    func testANewStreamAsksAgainFromTheAcceptedVersionsWithNoNonceAndTheNodeFirst() {
        var (machine, _) = streaming()
        _ = machine.receive(ADSResponse(typeURL: XDSResourceType.cluster.typeURL, versionInfo: "9", nonce: "n9", resourceNames: ["a"]), now: 0)
        XCTAssertEqual(machine.streamClosed(now: second), [])
        XCTAssertFalse(machine.isStreaming)
        let at = try! XCTUnwrap(machine.nextWakeUp)
        XCTAssertEqual(machine.timerFired(now: at - 1), [], "not before the backoff")
        let actions = machine.timerFired(now: at)
        XCTAssertEqual(actions.first, .openStream)
        XCTAssertEqual(requests(actions), [
            ADSRequest(type: .listener, versionInfo: "", resourceNames: [], responseNonce: "", includesNode: true),
            ADSRequest(type: .cluster, versionInfo: "9", resourceNames: [], responseNonce: ""),
            ADSRequest(type: .clusterLoadAssignment, versionInfo: "", resourceNames: ["a", "b"], responseNonce: ""),
        ])
    }

    func testUnansweredStreamsBackOffDoublingToTheMaximumAndAnAnsweredOneStartsOver() {
        var machine = ADSStateMachine(seed: 42)
        var now: Int64 = 0
        _ = machine.start(now: now)
        var waits: [Int64] = []
        for _ in 0..<8 {
            _ = machine.streamClosed(now: now)
            let at = machine.nextWakeUp!
            waits.append(at - now)
            now = at
            XCTAssertEqual(machine.timerFired(now: now).first, .openStream)
        }
        let bases: [Int64] = [1, 2, 4, 8, 16, 30, 30, 30].map { $0 * second }
        for (wait, base) in zip(waits, bases) {
            XCTAssertGreaterThanOrEqual(wait, base * 8 / 10)
            XCTAssertLessThanOrEqual(wait, base * 12 / 10)
        }
        XCTAssertNotEqual(Set(waits.suffix(3)).count, 1, "jittered, not all the same")
        _ = machine.receive(ADSResponse(typeURL: XDSResourceType.cluster.typeURL, versionInfo: "1", nonce: "n", resourceNames: []), now: now)
        _ = machine.streamClosed(now: now)
        XCTAssertLessThanOrEqual(machine.nextWakeUp! - now, 12 * second / 10)
    }

    func testAResponseOfATypeNobodySubscribedToIsIgnoredAndNotAnswered() {
        var (machine, _) = streaming()
        let actions = machine.receive(ADSResponse(typeURL: "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                                                  versionInfo: "1", nonce: "n", resourceNames: ["x"]), now: 0)
        XCTAssertEqual(actions.count, 1)
        guard case .rejected(_, "n", let detail) = actions.first else { return XCTFail("\(actions)") }
        XCTAssertTrue(detail.contains("does not subscribe"), detail)
        // A known type Ferry has not subscribed to yet is ignored the same way.
        var fresh = ADSStateMachine(seed: 1)
        _ = fresh.start(now: 0)
        XCTAssertEqual(requests(fresh.receive(ADSResponse(typeURL: XDSResourceType.listener.typeURL, versionInfo: "1",
                                                          nonce: "n", resourceNames: ["l"]), now: 0)), [])
    }

    func testNothingHappensToResponsesOrTimersOnceStoppedOrBetweenStreams() {
        var (machine, _) = streaming()
        _ = machine.streamClosed(now: 0)
        let response = ADSResponse(typeURL: XDSResourceType.cluster.typeURL, versionInfo: "1", nonce: "n", resourceNames: ["a"])
        XCTAssertEqual(machine.receive(response, now: 0), [], "a late response of the old stream")
        XCTAssertEqual(machine.stop(), [])
        XCTAssertEqual(machine.timerFired(now: 1_000 * second), [])
        XCTAssertNil(machine.nextWakeUp)

        var open = streaming().0
        XCTAssertEqual(open.stop(), [.closeStream])
        XCTAssertEqual(open.start(now: 0), [], "stopped for good")
    }

    func testAHugeListOfProblemsMakesABoundedErrorDetail() {
        var (machine, _) = streaming()
        let problems = (0..<10_000).map { "cluster \"c\($0)\": \(String(repeating: "x", count: $0 == 0 ? 5_000 : 20))" }
        let actions = machine.receive(ADSResponse(typeURL: XDSResourceType.cluster.typeURL, versionInfo: "1", nonce: "n",
                                                  resourceNames: [], problems: problems), now: 0)
        let detail = try! XCTUnwrap(requests(actions).first?.errorDetail)
        XCTAssertLessThanOrEqual(detail.count, machine.settings.maxErrorDetail + 40)
        XCTAssertTrue(detail.hasSuffix("more"), detail)
        XCTAssertTrue(detail.contains("c0"), "the first problem is named")
    }

    func testTheBackoffDoublesFromItsMinimumToItsMaximumWithoutJitter() {
        var backoff = ADSReconnectBackoff()
        backoff.jitter = 0
        var random = FastRandom(seed: 1)
        XCTAssertEqual((0..<7).map { backoff.wait(afterFailures: $0, random: &random) / second }, [1, 2, 4, 8, 16, 30, 30])
        XCTAssertEqual(backoff.wait(afterFailures: Int.max, random: &random), 30 * second)
    }
}
