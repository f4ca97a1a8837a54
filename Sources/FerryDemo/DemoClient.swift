import FerryGRPC
import FerryH2
import NIOCore
import NIOPosix

/// What a run of `DemoClient` saw.
public struct DemoReport: Sendable {
    public var calls = 0
    /// Calls answered per upstream (from the `ferry-upstream` response header).
    public var perUpstream: [String: Int] = [:]
    /// Calls per final gRPC status name (or `RESET`/`HTTP nnn` for non-gRPC outcomes).
    public var statuses: [String: Int] = [:]
    /// Per-call latency in microseconds, sorted.
    public var latenciesMicros: [Int] = []
    public var elapsedNanos: Int64 = 0
    /// Calls whose echoed body differed from what was sent.
    public var corruptedBodies = 0

    public func percentile(_ p: Double) -> Int {
        guard !latenciesMicros.isEmpty else { return 0 }
        let index = min(latenciesMicros.count - 1, Int((Double(latenciesMicros.count) * p).rounded(.up)) - 1)
        return latenciesMicros[max(0, index)]
    }

    public var callsPerSecond: Double {
        elapsedNanos > 0 ? Double(calls) / (Double(elapsedNanos) / 1e9) : 0
    }
}

/// Drives gRPC-shaped unary calls (one length-prefixed message each way) over one HTTP/2
/// connection, on Ferry's own client-role layer, keeping `concurrency` calls in flight.
public enum DemoClient {
    /// `path`: the gRPC method called; `timeout`: a `grpc-timeout` sent with every call.
    public static func run(host: String, port: Int, calls: Int, concurrency: Int, payloadSize: Int = 64,
                           path: String = "/ferry.demo.Echo/Say", timeout: String? = nil,
                           group: EventLoopGroup) async throws -> DemoReport {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(H2Connection(role: .client))
                }
            }
            .connect(host: host, port: port).get()
        defer { channel.close(promise: nil) }
        let promise = channel.eventLoop.makePromise(of: DemoReport.self)
        try await channel.eventLoop.submit {
            let h2 = try channel.pipeline.syncOperations.handler(type: H2Connection.self)
            h2.activateIfChannelActive()
            let driver = DemoDriver(connection: h2, authority: "\(host):\(port)", path: path, timeout: timeout, calls: calls,
                                    concurrency: concurrency, payloadSize: payloadSize, promise: promise)
            driver.start()
        }.get()
        return try await promise.futureResult.get()
    }
}

private final class DemoDriver {
    let connection: H2Connection
    let headers: H2Headers
    let message: ByteBuffer
    let calls: Int
    let concurrency: Int
    let promise: EventLoopPromise<DemoReport>
    var started = 0
    var report = DemoReport()
    let startTime = NIODeadline.now()

    init(connection: H2Connection, authority: String, path: String, timeout: String?, calls: Int, concurrency: Int, payloadSize: Int,
         promise: EventLoopPromise<DemoReport>) {
        self.connection = connection
        self.calls = calls
        self.concurrency = concurrency
        self.promise = promise
        var headers = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", path),
                                 (":authority", authority), ("content-type", "application/grpc"), ("te", "trailers")])
        if let timeout { headers.append(name: "grpc-timeout", value: timeout) }
        self.headers = headers
        var message = ByteBufferAllocator().buffer(capacity: payloadSize + 5)
        message.writeInteger(UInt8(0))
        message.writeInteger(UInt32(payloadSize))
        for i in 0..<payloadSize { message.writeInteger(UInt8(truncatingIfNeeded: i &* 31 &+ 7)) }
        self.message = message
    }

    func start() {
        report.latenciesMicros.reserveCapacity(calls)
        if calls == 0 { return finish() }
        for _ in 0..<min(concurrency, calls) { startCall() }
    }

    func startCall() {
        started += 1
        let call = DemoCall(driver: self)
        guard let stream = connection.openStream(headers: headers, endStream: false, delegate: call) else {
            record(call, status: "NOT_SENT")
            return
        }
        stream.sendData(message, endStream: true)
    }

    func record(_ call: DemoCall, status: String) {
        report.calls += 1
        report.statuses[status, default: 0] += 1
        if let upstream = call.upstream { report.perUpstream[upstream, default: 0] += 1 }
        if status == "OK" && call.body != message { report.corruptedBodies += 1 }
        report.latenciesMicros.append(Int((NIODeadline.now() - call.startTime).nanoseconds / 1000))
        if started < calls {
            startCall()
        } else if report.calls == calls {
            finish()
        }
    }

    func finish() {
        report.elapsedNanos = (NIODeadline.now() - startTime).nanoseconds
        report.latenciesMicros.sort()
        promise.succeed(report)
    }
}

private final class DemoCall: H2StreamDelegate {
    let driver: DemoDriver  // calls keep their driver alive until the last one ends
    let startTime = NIODeadline.now()
    var upstream: String?
    var status: String?
    var body = ByteBuffer()

    init(driver: DemoDriver) {
        self.driver = driver
    }

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        upstream = headers.first("ferry-upstream")
        if let code = headers.first("grpc-status") {
            status = GRPCStatusCode(headerValue: code)?.name ?? "grpc-status \(code)"
        } else if endStream {
            status = "HTTP \(headers.first(":status") ?? "?")"
        }
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        body.writeImmutableBuffer(data)
        stream.consume(data.readableBytes)
    }

    func streamReceivedEnd(_ stream: H2Stream) {}

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        if let code = trailers.first("grpc-status") {
            status = GRPCStatusCode(headerValue: code)?.name ?? "grpc-status \(code)"
        }
    }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {}

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        let outcome: String
        if let error {
            switch error {
            case .resetByPeer(let code), .resetLocally(let code): outcome = "RESET \(code.name)"
            case .refusedByGoAway: outcome = "REFUSED"
            case .connectionLost: outcome = "CONNECTION_LOST"
            }
        } else {
            outcome = status ?? "NO_STATUS"
        }
        driver.record(self, status: outcome)
    }
}
