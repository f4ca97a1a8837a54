import FerryMetrics
import FerryGRPC
import FerryH2

/// What a call reports about itself: its final status and durations to the metrics and the
/// access log, and the status read from a header block.
extension ProxyCall {
    /// Counts the call's final status and duration (once), and writes its access-log line.
    func recordOutcome(grpcStatus: Int?, httpStatus: Int) {
        guard !outcomeRecorded else { return }
        outcomeRecorded = true
        let now = now()
        if let method = methodMetrics {
            if isGRPC { method.recordGRPCStatus(grpcStatus) } else { method.recordHTTPStatus(httpStatus) }
            method.counts.duration.observe(now - arrivedAt)
        }
        if let access, let log = environment.accessLog {
            access.entry.service = service?.name ?? "-"
            access.entry.grpc = isGRPC
            access.entry.grpcStatus = grpcStatus
            access.entry.httpStatus = httpStatus
            access.entry.durationNanoseconds = now - arrivedAt
            access.entry.attempts = machine.attemptsPlaced
            access.entry.deadlineNanoseconds = deadline?.budgetNanoseconds
            log.write(access.entry)
            self.access = nil
        }
    }

    /// The response headers went out (forwarded or made here): time to headers.
    func responseHeadersSent() {
        guard responseHeadersAt == 0 else { return }
        responseHeadersAt = now()
        methodMetrics?.counts.timeToHeaders.observe(responseHeadersAt - arrivedAt)
    }

    /// `grpc-status` as a number (FerryGRPC reads it from the bytes).
    static func grpcStatus(in headers: H2Headers) -> Int? {
        headers.withValue(of: "grpc-status") { $0.flatMap(GRPCHeaderValues.status) }
    }
}
