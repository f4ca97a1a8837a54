import FerryGRPC

/// Faults Ferry injects into the calls of a route or a method, to test how their callers cope:
/// a share of calls aborted with a status, a share delayed before they go upstream, and (when
/// `fromHeaders` is on) any call whose request asks for a fault in `ferry-fault-abort` /
/// `ferry-fault-delay`. An injected abort is the call's answer: no upstream sees the call and
/// Ferry's retries do not hide it. A delay runs against the call's deadline like any wait.
public struct FaultConfig: Sendable, Equatable {
    public struct Abort: Sendable, Equatable {
        /// For gRPC calls.
        public var grpcStatus: GRPCStatusCode
        /// For plain HTTP/2 requests.
        public var httpStatus: Int
        /// Share of calls, 0 to 100.
        public var percent: Double

        public init(grpcStatus: GRPCStatusCode, httpStatus: Int, percent: Double) {
            self.grpcStatus = grpcStatus
            self.httpStatus = httpStatus
            self.percent = percent
        }
    }

    public struct Delay: Sendable, Equatable {
        public var duration: Duration
        public var percent: Double

        public init(duration: Duration, percent: Double) {
            self.duration = duration
            self.percent = percent
        }
    }

    public var abort: Abort?
    public var delay: Delay?
    /// Requests may ask for a fault (off unless enabled: a caller must not be able to fail
    /// calls where nobody allowed it).
    public var fromHeaders = false
    /// The longest delay a request may ask for.
    public var maxHeaderDelay: Duration = .seconds(10)
    /// Where it was written (`listeners.in.routes[0].fault`), named in answers and metrics.
    public var origin: String

    public init(origin: String) {
        self.origin = origin
    }

    /// The request headers that ask for a fault, where `fromHeaders` allows them.
    public static let abortHeader = "ferry-fault-abort"
    public static let delayHeader = "ferry-fault-delay"

    /// `abort UNAVAILABLE (HTTP 503) 10%, delay 100ms 5%, from ferry-fault-* headers`.
    public var description: String {
        var parts: [String] = []
        if let abort { parts.append("abort \(abort.grpcStatus.name) (HTTP \(abort.httpStatus)) \(Self.format(abort.percent))%") }
        if let delay { parts.append("delay \(ConfigSummary.format(delay.duration)) \(Self.format(delay.percent))%") }
        if fromHeaders { parts.append("as requests ask in ferry-fault-* headers (delays up to \(ConfigSummary.format(maxHeaderDelay)))") }
        return parts.joined(separator: ", ")
    }

    static func format(_ percent: Double) -> String {
        percent == percent.rounded() ? String(Int(percent)) : String(percent)
    }
}
