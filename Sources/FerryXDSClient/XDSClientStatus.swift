import FerryMetrics
import FerryXDS
import NIOConcurrencyHelpers

/// What the xDS client has done, readable from any thread (for `/metrics` and `/ready`):
/// updated on the client's loop at each stream and response, not per call.
public final class XDSClientStatus: Sendable {
    public struct Counts: Sendable, Equatable {
        /// A stream to the control plane is open.
        public var connected = false
        public var streamsOpened = 0
        /// Responses accepted and rejected, by type (LDS, RDS, CDS, EDS; "other" for a type
        /// Ferry does not subscribe to).
        public var accepted: [String: Int] = [:]
        public var rejected: [String: Int] = [:]
        /// Resources held, by type.
        public var resources: [String: Int] = [:]
    }

    private let box = NIOLockedValueBox(Counts())

    public var counts: Counts { box.withLockedValue { $0 } }

    func update(_ body: (inout Counts) -> Void) {
        box.withLockedValue(body)
    }

    /// The counts in the Prometheus text format.
    public func metricsText() -> String {
        let counts = self.counts
        var writer = PrometheusWriter()
        writer.family("ferry_xds_connected", "gauge", "1 while a stream to the xDS control plane is open.")
        writer.sample("ferry_xds_connected", [], counts.connected ? 1 : 0)
        writer.family("ferry_xds_streams_total", "counter", "ADS streams opened to the control plane.")
        writer.sample("ferry_xds_streams_total", [], Double(counts.streamsOpened))
        writer.family("ferry_xds_responses_total", "counter", "xDS responses by type and verdict (accepted: ACKed and applied; rejected: NACKed or ignored).")
        for type in XDSResourceType.allCases.map(\.shortName) + ["other"] {
            writer.sample("ferry_xds_responses_total", [("type", type), ("result", "accepted")], Double(counts.accepted[type] ?? 0))
            writer.sample("ferry_xds_responses_total", [("type", type), ("result", "rejected")], Double(counts.rejected[type] ?? 0))
        }
        writer.family("ferry_xds_resources", "gauge", "xDS resources held, by type.")
        for type in XDSResourceType.allCases.map(\.shortName) {
            writer.sample("ferry_xds_resources", [("type", type)], Double(counts.resources[type] ?? 0))
        }
        return writer.text
    }
}
