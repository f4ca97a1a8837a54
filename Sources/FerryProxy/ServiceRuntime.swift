import FerryConfig
import FerryDiscovery
import FerryPolicy
import Logging
import NIOCore

/// One service as one event loop sees it: its endpoints, a pool per endpoint, and the picker.
/// Confined to its loop; nothing here is shared or locked.
final class ServiceRuntime {
    let config: ServiceConfig
    /// The service's deadline settings in nanoseconds, converted once rather than per call.
    let timeoutNanoseconds: Int64?
    let deadlineOffsetNanoseconds: Int64
    private(set) var pools: [UpstreamPool]
    private var picker: RoundRobin

    /// How long an endpoint whose connect just failed is passed over while others are healthy.
    static let connectFailureAvoidance = TimeAmount.seconds(1)

    init(config: ServiceConfig, source: EndpointSource, eventLoop: EventLoop, loopIndex: Int, logger: Logger) {
        self.config = config
        self.timeoutNanoseconds = config.timeout?.totalNanoseconds
        self.deadlineOffsetNanoseconds = config.deadlineOffset.totalNanoseconds
        self.pools = source.snapshot().map {
            UpstreamPool(endpoint: $0, service: config, eventLoop: eventLoop, logger: logger)
        }
        self.picker = RoundRobin(start: loopIndex)
    }

    var name: String { config.name }

    /// The pool for the next call: round-robin, passing over endpoints that just failed to
    /// connect while another is healthy (if all failed, every endpoint is tried again).
    func pickPool() -> UpstreamPool? {
        let pools = self.pools
        if let index = picker.pick(count: pools.count, isAvailable: { !pools[$0].isFailing(within: Self.connectFailureAvoidance) }) {
            return pools[index]
        }
        return picker.pick(count: pools.count).map { pools[$0] }
    }

    func drain() {
        for pool in pools { pool.drain() }
    }
}
