import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy
import FerryUpstream
import Logging
import NIOCore

/// Asks one endpoint `grpc.health.v1.Health/Check` every interval, on the endpoint's pool of
/// this event loop (one loop checks each endpoint for the whole proxy), and records each
/// outcome in the endpoint's shared health, which every loop's balancer reads. A check waits
/// for a connection like a call, but is not a call: it does not count in the balancer's
/// latency or load, nor in failure accrual.
///
/// Per check: `idle` -> (interval) -> `waitingForConnection` -> (lent) -> `asking(stream)` ->
/// an answer, a reset, a connect failure or the timeout -> the outcome -> `idle`.
///
/// With `watch`, the stream is `Watch` instead and stays open (`watching`): each message is the
/// endpoint's state, recorded at once; the first must come within the timeout. The stream's
/// end, a reset or a lost connection is one failed check, and the next stream goes after the
/// interval. A server that answers Watch with UNIMPLEMENTED is asked Check from then on.
final class EndpointHealthChecker: UpstreamWaiter, H2StreamDelegate {
    private let pool: UpstreamPool
    private let config: HealthCheckConfig
    private let thresholds: HealthCheckState.Settings
    private let logger: Logger
    private let request: ByteBuffer
    private let checkHeaders: H2Headers
    private let watchHeaders: H2Headers
    /// Watching (until the server shows it has no Watch), or asking Check each interval.
    private var watches: Bool

    private enum Phase {
        case idle
        case waitingForConnection
        case asking(H2Stream, answer: Answer)
        /// A Watch stream is open; `pending` holds a message not all read yet.
        case watching(H2Stream, status: Int, pending: ByteBuffer, heard: Bool)
        case stopped
    }

    /// What came back so far on the check's stream.
    private struct Answer {
        var status = 0
        var body = ByteBuffer()
    }

    private var phase = Phase.idle
    private var nextCheck: Scheduled<Void>?
    private var timeout: Scheduled<Void>?
    /// The largest answer read (a HealthCheckResponse is a few bytes).
    static let maxAnswerBytes = 4096

    init(pool: UpstreamPool, config: HealthCheckConfig, logger: Logger) {
        self.pool = pool
        self.config = config
        self.thresholds = HealthCheckState.Settings(healthyThreshold: config.healthyThreshold, unhealthyThreshold: config.unhealthyThreshold)
        self.logger = logger
        self.request = GRPCHealthMessages.checkRequest(service: config.serviceName)
        let common = [(":method", "POST"), (":scheme", "http"), (":authority", pool.address.description),
                      ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "ferry-health-check")]
        self.checkHeaders = H2Headers([(":path", GRPCHealthMessages.checkPath)] + common
                                      + [("grpc-timeout", GRPCTimeout(nanoseconds: config.timeout.totalNanoseconds).headerValue)])
        self.watchHeaders = H2Headers([(":path", GRPCHealthMessages.watchPath)] + common)
        self.watches = config.watch
    }

    var fairnessKey: ObjectIdentifier { ObjectIdentifier(self) }

    /// Starts checking: the first check after `initialDelay` (a spread, so a service's checks
    /// do not all go at once).
    func start(initialDelay: TimeAmount) {
        guard case .idle = phase, nextCheck == nil else { return }
        nextCheck = pool.eventLoop.scheduleTask(in: initialDelay) { [weak self] in self?.check() }
    }

    /// No more checks (the endpoint left, or the service stopped checking).
    func stop() {
        if case .asking(let stream, _) = phase { stream.reset(.cancel) }
        if case .watching(let stream, _, _, _) = phase { stream.reset(.cancel) }
        if case .waitingForConnection = phase { pool.cancel(self) }
        phase = .stopped
        nextCheck?.cancel()
        timeout?.cancel()
    }

    private func check() {
        nextCheck = nil
        guard case .idle = phase else { return }
        phase = .waitingForConnection
        timeout = pool.eventLoop.scheduleTask(in: .nanoseconds(config.timeout.totalNanoseconds)) { [weak self] in self?.timedOut() }
        pool.acquire(self)
    }

    private func timedOut() {
        timeout = nil
        switch phase {
        case .waitingForConnection:
            pool.cancel(self)
            finish(failure: "no connection within the check's timeout (\(ConfigSummary.format(config.timeout)))")
        case .asking(let stream, _), .watching(let stream, _, _, heard: false):
            phase = .idle     // the reset's close is not this check's outcome any more
            stream.reset(.cancel)
            finish(failure: "no answer within \(ConfigSummary.format(config.timeout))")
        case .idle, .stopped, .watching:
            break
        }
    }

    /// The check is over (for Watch: its stream): record it and schedule the next.
    private func finish(failure reason: String?) {
        if case .stopped = phase { return }
        phase = .idle
        timeout?.cancel()
        timeout = nil
        record(failure: reason, reported: false)
        nextCheck = pool.eventLoop.scheduleTask(in: .nanoseconds(config.interval.totalNanoseconds)) { [weak self] in self?.check() }
    }

    private func record(failure reason: String?, reported: Bool) {
        switch pool.health.recordHealthCheck(failure: reason, settings: thresholds, at: pool.clock.now(), reported: reported) {
        case .none: break
        case .becameUnhealthy(let reason):
            logger.warning("endpoint failed its health checks; no new calls until it passes", metadata: [
                "service": "\(pool.serviceName)", "endpoint": "\(pool.endpointName)", "reason": "\(reason)",
                "failed_in_a_row": "\(config.unhealthyThreshold)"])
        case .recovered:
            logger.info("endpoint passed its health checks again; it takes calls", metadata: [
                "service": "\(pool.serviceName)", "endpoint": "\(pool.endpointName)",
                reported ? "reported" : "passed_in_a_row": reported ? "SERVING" : "\(config.healthyThreshold)"])
        }
    }

    // MARK: - UpstreamWaiter

    func upstreamReady(_ connection: H2Connection) {
        guard case .waitingForConnection = phase else { return }
        guard let stream = connection.openStream(headers: watches ? watchHeaders : checkHeaders, endStream: false, delegate: self) else {
            finish(failure: "the endpoint's connection refused a new stream")
            return
        }
        phase = watches ? .watching(stream, status: 0, pending: ByteBuffer(), heard: false) : .asking(stream, answer: Answer())
        stream.sendData(request, endStream: true)
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        guard case .waitingForConnection = phase else { return }
        switch failure {
        case .connectFailed(_, let reason): finish(failure: "connect failed: \(reason)")
        case .overloaded: finish(failure: "the endpoint's pool is full (max_pending_calls)")
        case .shuttingDown: stop()
        }
    }

    func poolRetired() { stop() }

    // MARK: - H2StreamDelegate

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        if case .watching(let current, _, let pending, let heard) = phase, current === stream {
            let status = headers.first(":status").flatMap { Int($0) } ?? 0
            phase = .watching(stream, status: status, pending: pending, heard: heard)
            if endStream { watchEnded(status: status, trailers: headers) }
            return
        }
        guard case .asking(let current, var answer) = phase, current === stream else { return }
        answer.status = headers.first(":status").flatMap { Int($0) } ?? 0
        phase = .asking(stream, answer: answer)
        if endStream { concluded(answer, trailers: headers) }    // Trailers-Only: a gRPC error
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        stream.consume(data.readableBytes)
        if case .watching(let current, _, _, _) = phase, current === stream {
            watchReceived(data, on: stream)
            return
        }
        guard case .asking(let current, var answer) = phase, current === stream else { return }
        guard answer.body.readableBytes + data.readableBytes <= Self.maxAnswerBytes else {
            phase = .idle
            stream.reset(.cancel)
            finish(failure: "the answer is larger than \(Self.maxAnswerBytes) bytes; a HealthCheckResponse is a few")
            return
        }
        answer.body.writeImmutableBuffer(data)
        phase = .asking(stream, answer: answer)
    }

    func streamReceivedEnd(_ stream: H2Stream) {
        if case .watching(let current, let status, _, _) = phase, current === stream { return watchEnded(status: status, trailers: nil) }
        guard case .asking(let current, let answer) = phase, current === stream else { return }
        concluded(answer, trailers: nil)
    }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        if case .watching(let current, let status, _, _) = phase, current === stream { return watchEnded(status: status, trailers: trailers) }
        guard case .asking(let current, let answer) = phase, current === stream else { return }
        concluded(answer, trailers: trailers)
    }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {}

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        if case .watching(let current, _, _, _) = phase, current === stream {
            return finish(failure: "the Watch stream broke (\(error.map { "\($0)" } ?? "no trailers"))")
        }
        guard case .asking(let current, _) = phase, current === stream else { return }
        finish(failure: "the check's stream ended without an answer (\(error.map { "\($0)" } ?? "no trailers"))")
    }

    // MARK: - Watch

    /// Messages on the Watch stream: each complete one is the endpoint's state now.
    private func watchReceived(_ data: ByteBuffer, on stream: H2Stream) {
        guard case .watching(_, let status, var pending, var heard) = phase else { return }
        guard status == 200 else { return }       // the stream's end says what went wrong
        pending.writeImmutableBuffer(data)
        while let message = GRPCHealthMessages.nextWatchResponse(&pending) {
            if !heard {
                heard = true
                timeout?.cancel()
                timeout = nil
            }
            switch message {
            case .success(.serving): record(failure: nil, reported: true)
            case .success(.serviceUnknown):
                record(failure: "the endpoint does not know the health of \(Self.subject(config.serviceName)) (SERVICE_UNKNOWN)", reported: true)
            case .success(let other): record(failure: "the endpoint reports \(other)", reported: true)
            case .failure(let error):
                phase = .idle
                stream.reset(.cancel)
                return finish(failure: "\(error)")
            }
            if case .stopped = phase { return }
        }
        guard pending.readableBytes <= Self.maxAnswerBytes else {
            phase = .idle
            stream.reset(.cancel)
            return finish(failure: "a Watch message is larger than \(Self.maxAnswerBytes) bytes; a HealthCheckResponse is a few")
        }
        phase = .watching(stream, status: status, pending: pending, heard: heard)
    }

    /// The Watch stream ended: UNIMPLEMENTED means the server has no Watch (ask Check from
    /// now on, at once); anything else is a failed check, and a new stream after the interval.
    private func watchEnded(status: Int, trailers: H2Headers?) {
        let grpcStatus = trailers?.first("grpc-status").flatMap(GRPCStatusCode.init(headerValue:))
        if status == 200, grpcStatus == .unimplemented {
            logger.info("endpoint has no grpc.health.v1.Health/Watch; asking Check every interval instead", metadata: [
                "service": "\(pool.serviceName)", "endpoint": "\(pool.endpointName)"])
            watches = false
            phase = .idle
            timeout?.cancel()
            timeout = nil
            nextCheck = pool.eventLoop.scheduleTask(in: .zero) { [weak self] in self?.check() }
            return
        }
        let reason: String
        if status != 200 {
            reason = "the endpoint answered HTTP \(status), not a gRPC response"
        } else if grpcStatus == .notFound {
            reason = "the endpoint does not know the health of \(Self.subject(config.serviceName)) (NOT_FOUND)"
        } else if let grpcStatus {
            reason = "the Watch stream ended with \(grpcStatus.name)" + (trailers?.first("grpc-message").map { ": \($0)" } ?? "")
        } else {
            reason = "the Watch stream ended without a grpc-status"
        }
        finish(failure: reason)     // the stream is over: nothing to reset
    }

    private static func subject(_ serviceName: String) -> String {
        serviceName.isEmpty ? "the whole server" : "\"\(serviceName)\""
    }

    private func concluded(_ answer: Answer, trailers: H2Headers?) {
        finish(failure: Self.verdict(answer, trailers: trailers, serviceName: config.serviceName))
    }

    /// Why an answer fails the check, or nil when it says SERVING.
    private static func verdict(_ answer: Answer, trailers: H2Headers?, serviceName: String) -> String? {
        guard answer.status == 200 else { return "the endpoint answered HTTP \(answer.status), not a gRPC response" }
        guard let text = trailers?.first("grpc-status"), let status = GRPCStatusCode(headerValue: text) else {
            return "the answer has no grpc-status"
        }
        let message = trailers?.first("grpc-message").map { ": \($0)" } ?? ""
        switch status {
        case .ok: break
        case .notFound:
            return "the endpoint does not know the health of \(subject(serviceName)) (NOT_FOUND)"
        case .unimplemented:
            return "the endpoint does not serve grpc.health.v1.Health (UNIMPLEMENTED)"
        default:
            return "Check answered \(status.name)\(message)"
        }
        switch GRPCHealthMessages.decodeCheckResponse(answer.body) {
        case .success(.serving): return nil
        case .success(let other): return "the endpoint reports \(other)"
        case .failure(let error): return "\(error)"
        }
    }
}
