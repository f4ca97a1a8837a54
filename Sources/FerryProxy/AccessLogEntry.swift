import FerryAdmin
import FerryConfig
import FerryGRPC
import NIOCore

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

    /// The line, newline included.
    func line(_ format: LogFormat) -> String {
        var out = ByteBufferAllocator().buffer(capacity: 512)
        write(format, to: &out)
        return String(buffer: out)
    }

    /// The most bytes the line can take (strings as if every byte were escaped).
    private var worstCase: Int {
        var total = 1024    // keys, numbers, the timestamp, the status: under 600
        for text in [listener, client, identity ?? "", authority, method, path, requestID, service, proxyError ?? ""] {
            total += LineBytes.worstCase(of: text)
        }
        for endpoint in endpointsTried { total += 2 * LineBytes.worstCase(of: endpoint) + 1 }
        return total
    }

    /// Appends the line (newline included) to `out`, written in place: no String per field.
    func write(_ format: LogFormat, to out: inout ByteBuffer) {
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: worstCase) { memory in
            var line = LineWriter(format: format, LineBytes(memory.baseAddress!.assumingMemoryBound(to: UInt8.self)))
            line.open()
            line.timestamp("time", startUnixMillis)
            line.text("listener", listener)
            line.text("client", client)
            if let identity { line.text("identity", identity) }
            line.text("authority", authority)
            line.text("method", method)
            line.text("path", path)
            line.text("request_id", requestID)
            line.text("service", service)
            line.text("status", status)
            if grpc, let grpcStatus { line.number("grpc_status", Int64(grpcStatus)) }
            line.number("http_status", Int64(httpStatus))
            line.millis("duration_ms", durationNanoseconds)
            line.number("request_bytes", Int64(requestBytes))
            line.number("response_bytes", Int64(responseBytes))
            line.number("attempts", Int64(attempts))
            line.list("endpoints", endpointsTried)
            line.text("endpoint", endpointsTried.last ?? "-")
            if let deadlineNanoseconds { line.number("deadline_ms", deadlineNanoseconds / 1_000_000) } else { line.null("deadline_ms") }
            if let proxyError { line.text("error", proxyError) }
            line.close()
            return line.bytes.count
        }
    }

    /// Writes `key=value ` pairs (logfmt) or `"key":value,` members (JSON).
    private struct LineWriter {
        let format: LogFormat
        var bytes: LineBytes
        private var first = true

        init(format: LogFormat, _ bytes: LineBytes) {
            self.format = format
            self.bytes = bytes
        }

        mutating func open() {
            if format == .json { bytes.byte(UInt8(ascii: "{")) }
        }

        mutating func close() {
            if format == .json { bytes.byte(UInt8(ascii: "}")) }
            bytes.byte(UInt8(ascii: "\n"))
        }

        private mutating func key(_ name: StaticString) {
            switch format {
            case .json:
                bytes.literal(first ? "\"" : ",\"")
                bytes.literal(name)
                bytes.literal("\":")
            case .text:
                if !first { bytes.byte(UInt8(ascii: " ")) }
                bytes.literal(name)
                bytes.byte(UInt8(ascii: "="))
            }
            first = false
        }

        mutating func text(_ name: StaticString, _ value: String) {
            key(name)
            if format == .json { bytes.jsonString(value) } else { bytes.logfmt(value) }
        }

        mutating func number(_ name: StaticString, _ value: Int64) {
            key(name)
            bytes.int(value)
        }

        mutating func millis(_ name: StaticString, _ nanoseconds: Int64) {
            key(name)
            let micros = max(0, nanoseconds / 1000)
            bytes.int(micros / 1000)
            bytes.byte(UInt8(ascii: "."))
            bytes.padded(Int(micros % 1000), width: 3)
        }

        mutating func timestamp(_ name: StaticString, _ unixMillis: Int64) {
            key(name)
            if format == .json { bytes.byte(UInt8(ascii: "\"")) }
            bytes.timestamp(unixMillis: unixMillis)
            if format == .json { bytes.byte(UInt8(ascii: "\"")) }
        }

        mutating func null(_ name: StaticString) {
            key(name)
            bytes.literal(format == .json ? "null" : "none")
        }

        mutating func list(_ name: StaticString, _ items: [String]) {
            key(name)
            if items.isEmpty {
                bytes.literal(format == .json ? "[]" : "-")
                return
            }
            switch format {
            case .json:
                bytes.byte(UInt8(ascii: "["))
                for (index, item) in items.enumerated() {
                    if index > 0 { bytes.byte(UInt8(ascii: ",")) }
                    bytes.jsonString(item)
                }
                bytes.byte(UInt8(ascii: "]"))
            case .text:
                bytes.logfmt(items.count == 1 ? items[0] : items.joined(separator: ","))
            }
        }
    }
}
