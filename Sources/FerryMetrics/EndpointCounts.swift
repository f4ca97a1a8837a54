/// What one loop counted of one endpoint, for `/metrics`: attempts sent, responses by status,
/// time to response headers, connects that failed. Plain counters: only the pool's loop writes
/// them; a scrape reads a copy on that loop.
package struct EndpointCounts: Sendable {
    /// Attempts placed (every try, retry and hedge).
    package var requests = 0
    /// Responses by gRPC status, 0...16 (a gRPC response), with a slot for a code outside them.
    package var grpcStatuses = [Int](repeating: 0, count: 18)
    /// Plain HTTP/2 responses by status class, 1xx...5xx.
    package var httpClasses = [Int](repeating: 0, count: 5)
    /// From an attempt's placement to its response headers.
    package var latency = LatencyHistogram()
    package var connectFailures = 0

    package init() {}

    package mutating func countGRPCStatus(_ code: Int) {
        grpcStatuses[(0...16).contains(code) ? code : 17] += 1
    }

    package mutating func countHTTPStatus(_ status: Int) {
        guard (100...599).contains(status) else { return }
        httpClasses[status / 100 - 1] += 1
    }

    package mutating func add(_ other: EndpointCounts) {
        requests += other.requests
        for i in grpcStatuses.indices { grpcStatuses[i] += other.grpcStatuses[i] }
        for i in httpClasses.indices { httpClasses[i] += other.httpClasses[i] }
        latency.add(other.latency)
        connectFailures += other.connectFailures
    }
}
