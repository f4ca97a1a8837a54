import FerryAdmin
import FerryConfig
import FerryGRPC

/// One call as the access log writes it: who called (client address, verified identity), what
/// (authority, method, path, request id), where it went (service, every endpoint tried) and how
/// it ended (status, bytes each way, duration, attempts, the proxy's own error if it made one).
struct AccessLogEntry {
    var startUnixMillis: Int64 = 0
    var listener = ""
    var client = "?"
    var identity: String?
    var authority = ""
    var method = ""
    var path = ""
    var requestID = ""
    var service = "-"
    var grpc = false
    /// The gRPC status code (gRPC calls), nil when none was seen.
    var grpcStatus: Int?
    var httpStatus = 0
    var durationNanoseconds: Int64 = 0
    var requestBytes = 0
    var responseBytes = 0
    var attempts = 0
    /// Every endpoint an attempt or hedge was sent to, in order (an endpoint twice if retried on it).
    var endpointsTried: [String] = []
    var deadlineNanoseconds: Int64?
    /// The message of a status Ferry made itself (no route, deadline, shed, ...).
    var proxyError: String?

    /// The gRPC status by name (`OK`, `UNAVAILABLE`), or the HTTP status for plain HTTP/2.
    var status: String {
        guard grpc else { return String(httpStatus) }
        guard let grpcStatus else { return "none" }
        return GRPCStatusCode(rawValue: grpcStatus)?.name ?? String(grpcStatus)
    }

    private var fields: [(String, Value)] {
        var fields: [(String, Value)] = [
            ("time", .text(LogText.timestamp(unixMillis: startUnixMillis))),
            ("listener", .text(listener)),
            ("client", .text(client)),
        ]
        if let identity { fields.append(("identity", .text(identity))) }
        fields += [
            ("authority", .text(authority)), ("method", .text(method)), ("path", .text(path)),
            ("request_id", .text(requestID)), ("service", .text(service)),
            ("status", .text(status)),
        ]
        if grpc, let grpcStatus { fields.append(("grpc_status", .number(String(grpcStatus)))) }
        fields += [
            ("http_status", .number(String(httpStatus))),
            ("duration_ms", .number(Self.millis(durationNanoseconds))),
            ("request_bytes", .number(String(requestBytes))),
            ("response_bytes", .number(String(responseBytes))),
            ("attempts", .number(String(attempts))),
            ("endpoints", .list(endpointsTried)),
            ("endpoint", .text(endpointsTried.last ?? "-")),
            ("deadline_ms", deadlineNanoseconds.map { .number(String($0 / 1_000_000)) } ?? .none),
        ]
        if let proxyError { fields.append(("error", .text(proxyError))) }
        return fields
    }

    private enum Value {
        case text(String)
        case number(String)
        case list([String])
        case none
    }

    /// The line, newline included.
    func line(_ format: LogFormat) -> String {
        var out = ""
        out.reserveCapacity(400)
        switch format {
        case .text:
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out.append(" ") }
                out += key
                out.append("=")
                switch value {
                case .text(let text): out += LogText.logfmt(text)
                case .number(let number): out += number
                case .list(let items): out += LogText.logfmt(items.isEmpty ? "-" : items.joined(separator: ","))
                case .none: out += "none"
                }
            }
        case .json:
            out.append("{")
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out.append(",") }
                out.append("\"")
                out += key
                out += "\":"
                switch value {
                case .text(let text): out += JSON.string(text)
                case .number(let number): out += number
                case .list(let items): out += "[" + items.map(JSON.string).joined(separator: ",") + "]"
                case .none: out += "null"
                }
            }
            out.append("}")
        }
        out.append("\n")
        return out
    }

    /// Milliseconds with microseconds: `12.345`.
    static func millis(_ nanoseconds: Int64) -> String {
        let micros = max(0, nanoseconds / 1000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
