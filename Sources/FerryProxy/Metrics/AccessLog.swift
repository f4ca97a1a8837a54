import FerryPolicy
import Logging

/// The optional access log: one structured line per call, for all calls or a sampled share.
struct AccessLog {
    let sample: Double
    let logger: Logger
    private var random = FastRandom()

    init(sample: Double, logger: Logger) {
        self.sample = sample
        self.logger = logger
    }

    /// Whether this call is logged (decided when it starts, so a line is all or nothing).
    mutating func sampled() -> Bool {
        sample >= 1 || Double.random(in: 0..<1, using: &random) < sample
    }

    struct Entry {
        var listener: String
        var service: String
        var path: String
        var status: String
        var durationNanoseconds: Int64
        var attempts: Int
        var endpoint: String
        var deadlineNanoseconds: Int64?
    }

    func log(_ e: Entry) {
        logger.info("call", metadata: [
            "listener": "\(e.listener)", "service": "\(e.service)", "path": "\(e.path)", "status": "\(e.status)",
            "duration_ms": "\(Double(e.durationNanoseconds / 1000) / 1000)", "attempts": "\(e.attempts)",
            "endpoint": "\(e.endpoint)", "deadline_ms": "\(e.deadlineNanoseconds.map { String($0 / 1_000_000) } ?? "none")",
        ])
    }
}
