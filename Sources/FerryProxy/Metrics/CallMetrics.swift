/// One event loop's counts for one method of one service on one listener. Touched only on
/// its loop; a scrape copies it (`snapshot`) and sums the loops.
final class MethodMetrics {
    /// The counts themselves, a value: a scrape copies it as it is.
    struct Snapshot: Sendable {
        var requests = 0
        /// Responses by gRPC status (index = code, 0...16); `grpcStatusOther` for anything else.
        var grpcStatuses = [Int](repeating: 0, count: 17)
        var grpcStatusOther = 0
        /// Plain HTTP/2 responses by status code.
        var httpStatuses: [Int: Int] = [:]
        var timeToHeaders = LatencyHistogram()
        var duration = LatencyHistogram()
        var requestBytes = 0
        var responseBytes = 0

        mutating func add(_ o: Snapshot) {
            requests += o.requests
            for i in grpcStatuses.indices { grpcStatuses[i] += o.grpcStatuses[i] }
            grpcStatusOther += o.grpcStatusOther
            for (k, v) in o.httpStatuses { httpStatuses[k, default: 0] += v }
            timeToHeaders.add(o.timeToHeaders)
            duration.add(o.duration)
            requestBytes += o.requestBytes
            responseBytes += o.responseBytes
        }
    }

    var counts = Snapshot()

    var snapshot: Snapshot { counts }

    func recordGRPCStatus(_ status: Int?) {
        if let status, status >= 0, status < counts.grpcStatuses.count {
            counts.grpcStatuses[status] += 1
        } else {
            counts.grpcStatusOther += 1
        }
    }

    func recordHTTPStatus(_ status: Int) {
        counts.httpStatuses[status, default: 0] += 1
    }
}

/// One event loop's metrics for calls a listener routed to a service: per method, plus the
/// service-level events (deadlines by source, idle streams, load shed, retries, hedges).
final class RouteMetrics {
    let listener: String
    let service: String
    private var labels = MethodLabels()
    /// Slot 0: "other" (non-gRPC paths and methods beyond the label cap); slot n: labels.names[n-1].
    private var methods: [MethodMetrics] = [MethodMetrics()]
    var deadlineExceeded = [0, 0, 0]          // caller, method, listener
    var streamIdleTimeouts = 0
    var loadShed = 0
    var noEndpoints = 0
    var retries = 0
    var retryBudgetExhausted = 0
    var hedges = 0

    init(listener: String, service: String) {
        self.listener = listener
        self.service = service
    }

    func method(forPath path: UnsafeRawBufferPointer?) -> MethodMetrics {
        guard let path else { return methods[0] }
        let slot = labels.slot(for: path)
        while methods.count <= slot { methods.append(MethodMetrics()) }
        return methods[slot]
    }

    struct Snapshot: Sendable {
        var listener: String
        var service: String
        var methods: [String: MethodMetrics.Snapshot]
        var deadlineExceeded: [Int]
        var streamIdleTimeouts: Int
        var loadShed: Int
        var noEndpoints: Int
        var retries: Int
        var retryBudgetExhausted: Int
        var hedges: Int
    }

    var snapshot: Snapshot {
        var byName: [String: MethodMetrics.Snapshot] = [:]
        for (slot, metrics) in methods.enumerated() {
            byName[slot == 0 ? "other" : labels.names[slot - 1]] = metrics.snapshot
        }
        return Snapshot(listener: listener, service: service, methods: byName, deadlineExceeded: deadlineExceeded,
                        streamIdleTimeouts: streamIdleTimeouts, loadShed: loadShed, noEndpoints: noEndpoints,
                        retries: retries, retryBudgetExhausted: retryBudgetExhausted, hedges: hedges)
    }
}
