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
final class EndpointHealthChecker: UpstreamWaiter, H2StreamDelegate {
    private let pool: UpstreamPool
    private let config: HealthCheckConfig
    private let thresholds: HealthCheckState.Settings
    private let logger: Logger
    private let request: ByteBuffer
    private let headers: H2Headers

    private enum Phase {
        case idle
        case waitingForConnection
        case asking(H2Stream, answer: Answer)
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
        self.headers = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", GRPCHealthMessages.checkPath),
                                  (":authority", pool.address.description), ("content-type", "application/grpc"),
                                  ("te", "trailers"), ("grpc-timeout", GRPCTimeout(nanoseconds: config.timeout.totalNanoseconds).headerValue),
                                  ("user-agent", "ferry-health-check")])
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
        case .asking(let stream, _):
            phase = .idle     // the reset's close is not this check's outcome any more
            stream.reset(.cancel)
            finish(failure: "no answer within \(ConfigSummary.format(config.timeout))")
        case .idle, .stopped:
            break
        }
    }

    /// The check is over: record it and schedule the next.
    private func finish(failure reason: String?) {
        if case .stopped = phase { return }
        phase = .idle
        timeout?.cancel()
        timeout = nil
        switch pool.health.recordHealthCheck(failure: reason, settings: thresholds, at: pool.clock.now()) {
        case .none: break
        case .becameUnhealthy(let reason):
            logger.warning("endpoint failed its health checks; no new calls until it passes", metadata: [
                "service": "\(pool.serviceName)", "endpoint": "\(pool.endpointName)", "reason": "\(reason)",
                "failed_in_a_row": "\(config.unhealthyThreshold)"])
        case .recovered:
            logger.info("endpoint passed its health checks again; it takes calls", metadata: [
                "service": "\(pool.serviceName)", "endpoint": "\(pool.endpointName)", "passed_in_a_row": "\(config.healthyThreshold)"])
        }
        nextCheck = pool.eventLoop.scheduleTask(in: .nanoseconds(config.interval.totalNanoseconds)) { [weak self] in self?.check() }
    }

    // MARK: - UpstreamWaiter

    func upstreamReady(_ connection: H2Connection) {
        guard case .waitingForConnection = phase else { return }
        guard let stream = connection.openStream(headers: headers, endStream: false, delegate: self) else {
            finish(failure: "the endpoint's connection refused a new stream")
            return
        }
        phase = .asking(stream, answer: Answer())
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
        guard case .asking(let current, var answer) = phase, current === stream else { return }
        answer.status = headers.first(":status").flatMap { Int($0) } ?? 0
        phase = .asking(stream, answer: answer)
        if endStream { concluded(answer, trailers: headers) }    // Trailers-Only: a gRPC error
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        stream.consume(data.readableBytes)
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
        guard case .asking(let current, let answer) = phase, current === stream else { return }
        concluded(answer, trailers: nil)
    }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        guard case .asking(let current, let answer) = phase, current === stream else { return }
        concluded(answer, trailers: trailers)
    }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {}

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        guard case .asking(let current, _) = phase, current === stream else { return }
        finish(failure: "the check's stream ended without an answer (\(error.map { "\($0)" } ?? "no trailers"))")
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
            return "the endpoint does not know the health of \(serviceName.isEmpty ? "the whole server" : "\"\(serviceName)\"") (NOT_FOUND)"
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
