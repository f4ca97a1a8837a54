import FerryPolicy
import Logging

/// The optional access log: one structured line per call, for all calls or a sampled share.
package struct AccessLog {
    package let sample: Double
    package let logger: Logger
    private var random = FastRandom()

    package init(sample: Double, logger: Logger) {
        self.sample = sample
        self.logger = logger
    }

    /// Whether this call is logged (decided when it starts, so a line is all or nothing).
    package mutating func sampled() -> Bool {
        sample >= 1 || Double.random(in: 0..<1, using: &random) < sample
    }

    package struct Entry {
        package var listener: String
        package var service: String
        package var path: String
        package var status: String
        package var durationNanoseconds: Int64
        package var attempts: Int
        package var endpoint: String
        package var deadlineNanoseconds: Int64?

        package init(listener: String, service: String, path: String, status: String, durationNanoseconds: Int64, attempts: Int, endpoint: String, deadlineNanoseconds: Int64?) {
            self.listener = listener
            self.service = service
            self.path = path
            self.status = status
            self.durationNanoseconds = durationNanoseconds
            self.attempts = attempts
            self.endpoint = endpoint
            self.deadlineNanoseconds = deadlineNanoseconds
        }
    }

    package func log(_ e: Entry) {
        logger.info("call", metadata: [
            "listener": "\(e.listener)", "service": "\(e.service)", "path": "\(e.path)", "status": "\(e.status)",
            "duration_ms": "\(Double(e.durationNanoseconds / 1000) / 1000)", "attempts": "\(e.attempts)",
            "endpoint": "\(e.endpoint)", "deadline_ms": "\(e.deadlineNanoseconds.map { String($0 / 1_000_000) } ?? "none")",
        ])
    }
}
