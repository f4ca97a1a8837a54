import FerryAdmin
import FerryConfig
import FerryH2
import FerryPolicy
import NIOCore

/// One event loop's access log: the lines of its calls gather in a buffer that goes to the
/// writer thread when it holds `flushBytes`, or `flushInterval` after its first line, so a
/// call costs no system call and no lock. Which calls are logged is drawn when each starts.
final class AccessLog {
    let sink: AccessLogSink
    private let eventLoop: EventLoop
    private var random = FastRandom()
    private var buffer = ByteBufferAllocator().buffer(capacity: AccessLog.flushBytes + 1024)
    private var lines = 0
    private var flushScheduled = false
    static let flushBytes = 64 << 10
    static let flushInterval = TimeAmount.milliseconds(200)
    static let requestIDHeader = "x-request-id"
    /// Longest `x-request-id` taken from a client; a longer one is replaced.
    static let maxRequestIDLength = 200

    init(sink: AccessLogSink, eventLoop: EventLoop) {
        self.sink = sink
        self.eventLoop = eventLoop
    }

    var config: AccessLogConfig { sink.config }

    /// Whether this call is logged (decided when it starts, so a line is all or nothing).
    func sampled() -> Bool {
        config.sample >= 1 || Double.random(in: 0..<1, using: &random) < config.sample
    }

    /// The request's id: its own `x-request-id` when it has a usable one (`generated` false),
    /// else a new random (version 4) UUID to forward, or nil when ids are only passed on.
    func requestID(in headers: H2Headers) -> (id: String?, generated: Bool) {
        let given = headers.withValue(of: Self.requestIDHeader) { value -> String? in
            guard let value, !value.isEmpty, value.count <= Self.maxRequestIDLength else { return nil }
            return String(decoding: value, as: UTF8.self)
        }
        if let given { return (given, false) }
        guard config.generateRequestID else { return (nil, false) }
        return (Self.uuid(random.next(), random.next()), true)
    }

    /// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` from 128 random bits (RFC 9562's version 4).
    static func uuid(_ high: UInt64, _ low: UInt64) -> String {
        let high = (high & ~0xF000) | 0x4000                       // version 4
        let low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // variant 10
        return String(unsafeUninitializedCapacity: 36) { out in
            var at = 0
            func put(_ bits: UInt64, _ digits: Int, dashesAfter: (Int, Int)) {
                for i in 0..<digits {
                    let nibble = UInt8(truncatingIfNeeded: (bits >> UInt64(4 * (digits - 1 - i))) & 0xF)
                    out[at] = nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ (nibble &- 10)
                    at += 1
                    if i + 1 == dashesAfter.0 || i + 1 == dashesAfter.1 {
                        out[at] = UInt8(ascii: "-")
                        at += 1
                    }
                }
            }
            put(high, 16, dashesAfter: (8, 12))
            out[at] = UInt8(ascii: "-")
            at += 1
            put(low, 16, dashesAfter: (4, 0))
            return at
        }
    }

    func write(_ entry: AccessLogEntry) {
        entry.write(config.format, to: &buffer)
        lines += 1
        if buffer.readableBytes >= Self.flushBytes {
            flush()
        } else if !flushScheduled {
            flushScheduled = true
            eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: Self.flushInterval) { [self] in
                flushScheduled = false
                flush()
            }
        }
    }

    /// Hands what the buffer holds to the writer thread.
    func flush() {
        guard buffer.readableBytes > 0 else { return }
        sink.writer.submit(Array(buffer.readableBytesView), lines: lines, to: sink)
        buffer.clear()
        lines = 0
    }
}

/// The access log's entry of one call, filled in as the call goes (boxed: only logged calls
/// have one).
final class AccessRecord {
    var entry = AccessLogEntry()

    init(_ headers: H2Headers, requestID: String, call: ProxyCall) {
        entry.startUnixMillis = LogText.unixMillis()
        entry.listener = call.listener.name
        entry.client = (call.downstream.connection.delegate as? DownstreamConnection)?.peer ?? "?"
        entry.identity = call.callerIdentity
        entry.authority = headers.first(":authority") ?? headers.first("host") ?? ""
        entry.method = headers.first(":method") ?? ""
        entry.path = headers.first(":path") ?? ""
        entry.requestID = requestID
    }
}
