/// One event loop's counts for one method of one service on one listener. Touched only on
/// its loop; a scrape copies it (`snapshot`) and sums the loops.
package final class MethodMetrics {
    /// The counts themselves, a value: a scrape copies it as it is.
    package struct Snapshot: Sendable {
        package var requests = 0
        /// Responses by gRPC status (index = code, 0...16); `grpcStatusOther` for anything else.
        package var grpcStatuses = [Int](repeating: 0, count: 17)
        package var grpcStatusOther = 0
        /// Plain HTTP/2 responses by status code.
        package var httpStatuses: [Int: Int] = [:]
        package var timeToHeaders = LatencyHistogram()
        package var duration = LatencyHistogram()
        package var requestBytes = 0
        package var responseBytes = 0

        package mutating func add(_ o: Snapshot) {
            requests += o.requests
            for i in grpcStatuses.indices { grpcStatuses[i] += o.grpcStatuses[i] }
            grpcStatusOther += o.grpcStatusOther
            for (k, v) in o.httpStatuses { httpStatuses[k, default: 0] += v }
            timeToHeaders.add(o.timeToHeaders)
            duration.add(o.duration)
            requestBytes += o.requestBytes
            responseBytes += o.responseBytes
        }

        package init() {}
    }

    package var counts = Snapshot()

    package var snapshot: Snapshot { counts }

    package func recordGRPCStatus(_ status: Int?) {
        if let status, status >= 0, status < counts.grpcStatuses.count {
            counts.grpcStatuses[status] += 1
        } else {
            counts.grpcStatusOther += 1
        }
    }

    package func recordHTTPStatus(_ status: Int) {
        counts.httpStatuses[status, default: 0] += 1
    }
}

/// One event loop's metrics for calls a listener routed to a service: per method, plus the
/// service-level events (deadlines by source, idle streams, load shed, retries, hedges).
package final class RouteMetrics {
    package let listener: String
    package let service: String
    private var labels = MethodLabels()
    /// Slot 0: "other" (non-gRPC paths and methods beyond the label cap); slot n: labels.names[n-1].
    private var methods: [MethodMetrics] = [MethodMetrics()]
    package var deadlineExceeded = [0, 0, 0]          // caller, method, listener
    package var streamIdleTimeouts = 0
    package var loadShed = 0
    package var noEndpoints = 0
    package var retries = 0
    package var retryBudgetExhausted = 0
    package var hedges = 0
    /// Calls refused by a rate limit, by where the limit was written.
    package var rateLimited: [String: Int] = [:]
    /// Injected faults, by where the fault was written.
    package var faultAborts: [String: Int] = [:]
    package var faultDelays: [String: Int] = [:]

    package init(listener: String, service: String) {
        self.listener = listener
        self.service = service
    }

    package func method(forPath path: UnsafeRawBufferPointer?) -> MethodMetrics {
        guard let path else { return methods[0] }
        let slot = labels.slot(for: path)
        while methods.count <= slot { methods.append(MethodMetrics()) }
        return methods[slot]
    }

    package struct Snapshot: Sendable {
        package var listener: String
        package var service: String
        package var methods: [String: MethodMetrics.Snapshot]
        package var deadlineExceeded: [Int]
        package var streamIdleTimeouts: Int
        package var loadShed: Int
        package var noEndpoints: Int
        package var retries: Int
        package var retryBudgetExhausted: Int
        package var hedges: Int
        package var rateLimited: [String: Int] = [:]
        package var faultAborts: [String: Int] = [:]
        package var faultDelays: [String: Int] = [:]

        package init(listener: String, service: String, methods: [String: MethodMetrics.Snapshot], deadlineExceeded: [Int], streamIdleTimeouts: Int, loadShed: Int, noEndpoints: Int, retries: Int, retryBudgetExhausted: Int, hedges: Int) {
            self.listener = listener
            self.service = service
            self.methods = methods
            self.deadlineExceeded = deadlineExceeded
            self.streamIdleTimeouts = streamIdleTimeouts
            self.loadShed = loadShed
            self.noEndpoints = noEndpoints
            self.retries = retries
            self.retryBudgetExhausted = retryBudgetExhausted
            self.hedges = hedges
        }
    }

    package var snapshot: Snapshot {
        var byName: [String: MethodMetrics.Snapshot] = [:]
        for (slot, metrics) in methods.enumerated() {
            byName[slot == 0 ? "other" : labels.names[slot - 1]] = metrics.snapshot
        }
        var snapshot = Snapshot(listener: listener, service: service, methods: byName, deadlineExceeded: deadlineExceeded,
                                streamIdleTimeouts: streamIdleTimeouts, loadShed: loadShed, noEndpoints: noEndpoints,
                                retries: retries, retryBudgetExhausted: retryBudgetExhausted, hedges: hedges)
        snapshot.rateLimited = rateLimited
        snapshot.faultAborts = faultAborts
        snapshot.faultDelays = faultDelays
        return snapshot
    }
}
