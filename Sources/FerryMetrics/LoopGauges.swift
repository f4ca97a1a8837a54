/// What a scrape reads from one loop besides its counters.
package struct LoopGauges: Sendable {
    package init() {}

    package struct Endpoint: Sendable {
        package var service: String
        package var endpoint: String
        package var pending: Int
        package var latencyNanoseconds: Double
        package var connections: Int
        package var streams: Int
        package var counts = EndpointCounts()
        /// Why connecting failed, while the last attempt to connect failed and none is up.
        package var connectError: String?

        package init(service: String, endpoint: String, pending: Int, latencyNanoseconds: Double, connections: Int, streams: Int) {
            self.service = service
            self.endpoint = endpoint
            self.pending = pending
            self.latencyNanoseconds = latencyNanoseconds
            self.connections = connections
            self.streams = streams
        }
    }

    package var connections: [String: Int] = [:]
    package var streams: [String: Int] = [:]
    package var endpoints: [Endpoint] = []
}
