import Logging
import NIOCore

/// Warnings that can come once per connection or per call (a TLS handshake failing, a call
/// denied): each kind is logged at most once a second per event loop, saying how many like it
/// were not logged since, so a client retrying in a loop cannot flood the log.
struct RateLimitedLog {
    private var lastLogged: [String: NIODeadline] = [:]
    private var suppressed: [String: Int] = [:]
    static let interval = TimeAmount.seconds(1)

    mutating func warning(_ logger: Logger, kind: String, _ message: @autoclosure () -> Logger.Message,
                          _ metadata: @autoclosure () -> Logger.Metadata, now: NIODeadline = .now()) {
        if let last = lastLogged[kind], now - last < Self.interval {
            suppressed[kind, default: 0] += 1
            return
        }
        lastLogged[kind] = now
        var fields = metadata()
        if let count = suppressed.removeValue(forKey: kind), count > 0 { fields["suppressed_since_last"] = "\(count)" }
        logger.warning(message(), metadata: fields)
    }
}

/// Calls denied by an authorization policy, logged at most once a second per listener and policy.
final class DenialLog {
    var logger: Logger?
    private var log = RateLimitedLog()

    func record(listener: String, policy: String, caller: String?, path: String) {
        guard let logger else { return }
        log.warning(logger, kind: listener + "\u{0}" + policy, "call denied by authorization policy",
                    ["listener": "\(listener)", "policy": "\(policy)", "caller": "\(caller ?? "unauthenticated")", "path": "\(path)"])
    }
}
