import FerryPolicy

/// The client side of xDS's aggregated discovery service (ADS), state of the world: one
/// `StreamAggregatedResources` stream carrying the subscriptions of every resource type. It
/// decides what each request says (resource names, last accepted version, nonce, node on the
/// first request of a stream), ACKs or NACKs each response, keeps the subscriptions across
/// streams and reopens the stream after a backoff, and counts a resource that does not come
/// within `resourceTimeout` as missing.
///
/// A value type with no I/O: events (`start`, `subscribe`, `receive`, `streamClosed`,
/// `timerFired`, `stop`) return the actions the shell performs in order, and the shell arms one
/// timer for `nextWakeUp`. Time is the caller's (nanoseconds on any monotonic clock); randomness
/// (the backoff's jitter) comes from a seeded generator.
///
/// A response is taken whole or not at all: if anything in it is wrong (the caller's decoding
/// and validation say so in `ADSResponse.problems`, and the machine adds its own checks) it is
/// NACKed and none of it is applied, so the last good configuration keeps serving.
public struct ADSStateMachine: Sendable {
    public struct Settings: Sendable, Equatable {
        /// How long a requested resource may take before it counts as missing (gRPC's 15 s).
        public var resourceTimeout: Int64 = 15_000_000_000
        public var backoff = ADSReconnectBackoff()
        /// At most this many characters of `error_detail` in a NACK.
        public var maxErrorDetail = 2048
        public init() {}
    }

    private enum State: Sendable {
        /// `start` not called yet.
        case idle
        case streaming(Stream)
        /// The stream ended; the next one opens at `at`.
        case waitingToReconnect(at: Int64)
        case stopped
    }

    /// What belongs to one stream and dies with it.
    private struct Stream: Sendable {
        var nodeSent = false
        /// Whether any response came on it: then the next stream starts from the shortest wait.
        var answered = false
        var nonces: [XDSResourceType: String] = [:]
    }

    public let settings: Settings
    private var state = State.idle
    /// In the order the types were first subscribed: requests go out in that order.
    private var subscriptions: [ADSSubscription] = []
    /// Streams in a row that ended without a response.
    private var unansweredStreams = 0
    private var random: FastRandom

    public init(settings: Settings = Settings(), seed: UInt64) {
        self.settings = settings
        self.random = FastRandom(seed: seed)
    }

    // MARK: Events

    /// Opens the first stream, asking for whatever is subscribed so far.
    public mutating func start(now: Int64) -> [ADSAction] {
        guard case .idle = state else { return [] }
        return openStream(now: now)
    }

    /// Asks for `names` of `type` from now on (in place of what was asked before). On an open
    /// stream the request goes out at once if it changed.
    public mutating func subscribe(_ type: XDSResourceType, to names: ADSResourceNames, now: Int64) -> [ADSAction] {
        let index: Int
        if let existing = subscriptions.firstIndex(where: { $0.type == type }) {
            guard subscriptions[existing].change(to: names) else { return [] }
            index = existing
        } else {
            subscriptions.append(ADSSubscription(type: type, names: names))
            index = subscriptions.count - 1
        }
        guard case .streaming(var stream) = state else { return [] }
        let request = makeRequest(index, on: &stream, now: now)
        state = .streaming(stream)
        return [.send(request)]
    }

    /// A response arrived on the open stream: ACK and apply it, or NACK it.
    public mutating func receive(_ response: ADSResponse, now: Int64) -> [ADSAction] {
        guard case .streaming(var stream) = state else { return [] }
        stream.answered = true
        unansweredStreams = 0
        guard let type = XDSResourceType(rawValue: response.typeURL),
              let index = subscriptions.firstIndex(where: { $0.type == type })
        else {
            // Nothing is sent back: a request for a type is a subscription to it. (Envoy, too,
            // ignores a response no subscription asked for.)
            state = .streaming(stream)
            let detail = "ignored: Ferry does not subscribe to type \"\(response.typeURL.prefix(200))\""
            return [.rejected(type: response.typeURL, nonce: response.nonce, errorDetail: detail)]
        }
        stream.nonces[type] = response.nonce

        var problems = response.problems
        var seen = Set<String>()
        for name in response.resourceNames where !seen.insert(name).inserted {
            problems.append("resource \"\(name)\" appears more than once")
        }
        if !problems.isEmpty {
            let detail = bounded(problems, type: type, version: response.versionInfo)
            var nack = makeRequest(index, on: &stream, now: now)
            nack.errorDetail = detail
            state = .streaming(stream)
            return [.rejected(type: response.typeURL, nonce: response.nonce, errorDetail: detail), .send(nack)]
        }
        let update = subscriptions[index].accept(version: response.versionInfo, names: response.resourceNames)
        let ack = makeRequest(index, on: &stream, now: now)
        state = .streaming(stream)
        return [.apply(update), .send(ack)]
    }

    /// The stream ended (closed by the server, reset, or never connected): the next one opens
    /// after a backoff. What was received keeps serving meanwhile.
    public mutating func streamClosed(now: Int64) -> [ADSAction] {
        guard case .streaming(let stream) = state else { return [] }
        unansweredStreams = stream.answered ? 0 : unansweredStreams + 1
        for index in subscriptions.indices { subscriptions[index].pauseClocks() }
        let wait = settings.backoff.wait(afterFailures: max(unansweredStreams - 1, 0), random: &random)
        state = .waitingToReconnect(at: now + wait)
        return []
    }

    /// The timer armed for `nextWakeUp` fired (early or late is harmless).
    public mutating func timerFired(now: Int64) -> [ADSAction] {
        switch state {
        case .waitingToReconnect(let at) where now >= at:
            return openStream(now: now)
        case .streaming:
            var actions: [ADSAction] = []
            for index in subscriptions.indices {
                let expired = subscriptions[index].expire(at: now)
                if !expired.isEmpty { actions.append(.resourcesDoNotExist(subscriptions[index].type, expired)) }
            }
            return actions
        case .idle, .waitingToReconnect, .stopped:
            return []
        }
    }

    /// Ends the client for good.
    public mutating func stop() -> [ADSAction] {
        let wasStreaming: Bool
        if case .streaming = state { wasStreaming = true } else { wasStreaming = false }
        state = .stopped
        return wasStreaming ? [.closeStream] : []
    }

    // MARK: Observations

    /// When the timer should fire next: the reconnect, or the first awaited resource's timeout.
    public var nextWakeUp: Int64? {
        switch state {
        case .waitingToReconnect(let at): return at
        case .streaming: return subscriptions.compactMap(\.earliestDeadline).min()
        case .idle, .stopped: return nil
        }
    }

    public var isStreaming: Bool {
        if case .streaming = state { return true } else { return false }
    }

    /// The last version of `type` accepted ("" before any).
    public func acceptedVersion(of type: XDSResourceType) -> String {
        subscriptions.first { $0.type == type }?.acceptedVersion ?? ""
    }

    // MARK: Requests

    private mutating func openStream(now: Int64) -> [ADSAction] {
        var stream = Stream()
        var actions: [ADSAction] = [.openStream]
        for index in subscriptions.indices { actions.append(.send(makeRequest(index, on: &stream, now: now))) }
        state = .streaming(stream)
        return actions
    }

    private mutating func makeRequest(_ index: Int, on stream: inout Stream, now: Int64) -> ADSRequest {
        let subscription = subscriptions[index]
        let request = ADSRequest(type: subscription.type, versionInfo: subscription.acceptedVersion,
                                 resourceNames: subscription.requestedNames,
                                 responseNonce: stream.nonces[subscription.type] ?? "",
                                 includesNode: !stream.nodeSent)
        stream.nodeSent = true
        subscriptions[index].requestSent(at: now, timeout: settings.resourceTimeout)
        return request
    }

    private func bounded(_ problems: [String], type: XDSResourceType, version: String) -> String {
        var detail = "\(type.shortName) version \"\(version)\" rejected: "
        for (offset, problem) in problems.enumerated() {
            let piece = (offset == 0 ? "" : "; ") + (problem.count > 300 ? problem.prefix(300) + "..." : problem)
            if detail.count + piece.count > settings.maxErrorDetail {
                detail += "; and \(problems.count - offset) more"
                break
            }
            detail += piece
        }
        return detail
    }
}
