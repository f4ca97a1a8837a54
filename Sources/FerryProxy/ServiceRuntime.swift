import FerryConfig
import FerryDiscovery
import FerryH2
import FerryPolicy
import Logging
import NIOCore

/// A method's policy with its durations converted to nanoseconds once, not per call.
struct ResolvedPolicy {
    let timeoutNanoseconds: Int64?
    let deadlineOffsetNanoseconds: Int64
    let maxMessageSize: Int
    let streamIdleNanoseconds: Int64?
    let sendsDeadlineHeader: Bool
    /// Where the policy was configured (`services.greeter.methods[0]`), named in messages.
    let origin: String

    init(_ policy: CallPolicy) {
        timeoutNanoseconds = policy.timeout?.totalNanoseconds
        deadlineOffsetNanoseconds = policy.deadlineOffset.totalNanoseconds
        maxMessageSize = policy.maxMessageSize
        streamIdleNanoseconds = policy.streamIdleTimeout?.totalNanoseconds
        sendsDeadlineHeader = policy.deadlineHeader
        origin = policy.origin
    }
}

/// One service as one event loop sees it: its method policies, its endpoints with a pool per
/// endpoint, and the picker. Confined to its loop; nothing here is shared or locked.
///
/// A reload updates it in place (new calls see the new policies; calls in flight keep the
/// policy and pool they started with). Endpoint changes from discovery keep the pools of
/// endpoints that stay, add pools for new ones, and retire the pools of endpoints that left:
/// their waiting calls are placed again, their open streams finish, then their connections close.
final class ServiceRuntime {
    private(set) var config: ServiceConfig
    private var methodTable: MethodTable
    private var methodPolicies: [ResolvedPolicy]
    private var servicePolicy: ResolvedPolicy
    private(set) var pools: [UpstreamPool] = []
    private var picker: RoundRobin
    /// Which discovery source's updates this runtime takes (a reload may start a new one).
    private(set) var sourceID: Int
    private(set) var isRetired = false
    let eventLoop: EventLoop
    let logger: Logger

    /// How long an endpoint whose connect just failed is passed over while others are healthy.
    static let connectFailureAvoidance = TimeAmount.seconds(1)

    init(config: ServiceConfig, sourceID: Int, endpoints: [Endpoint], eventLoop: EventLoop, loopIndex: Int, logger: Logger) {
        self.config = config
        self.methodTable = MethodTable(config.methods)
        self.methodPolicies = config.methods.map { ResolvedPolicy($0.policy) }
        self.servicePolicy = ResolvedPolicy(config.policy)
        self.sourceID = sourceID
        self.eventLoop = eventLoop
        self.logger = logger
        self.picker = RoundRobin(start: loopIndex)
        setEndpoints(endpoints)
    }

    var name: String { config.name }

    /// The policy for a request path: its `methods` entry, or the service's own.
    func policy(forPath path: UnsafeRawBufferPointer?) -> ResolvedPolicy {
        guard !methodTable.isEmpty, let path, let index = methodTable.match(path: path) else { return servicePolicy }
        return methodPolicies[index]
    }

    /// The pool for the next call: round-robin, passing over endpoints that just failed to
    /// connect while another is healthy (if all failed, every endpoint is tried again).
    func pickPool() -> UpstreamPool? {
        let pools = self.pools
        if let index = picker.pick(count: pools.count, isAvailable: { !pools[$0].isFailing(within: Self.connectFailureAvoidance) }) {
            return pools[index]
        }
        return picker.pick(count: pools.count).map { pools[$0] }
    }

    // MARK: - Changes

    /// A reload: new policies at once; new pools if the pool settings changed; the endpoints
    /// of a new discovery source.
    func update(config newConfig: ServiceConfig, sourceID newSourceID: Int, endpoints: [Endpoint]) {
        let poolChanged = newConfig.pool != config.pool
        config = newConfig
        methodTable = MethodTable(newConfig.methods)
        methodPolicies = newConfig.methods.map { ResolvedPolicy($0.policy) }
        servicePolicy = ResolvedPolicy(newConfig.policy)
        if poolChanged {
            let old = pools
            pools = []
            setEndpoints(endpoints, retiring: old)
        } else if newSourceID != sourceID {
            setEndpoints(endpoints)
        }
        sourceID = newSourceID
    }

    /// Discovery's new endpoint set.
    func setEndpoints(_ endpoints: [Endpoint]) {
        setEndpoints(endpoints, retiring: [])
    }

    private func setEndpoints(_ endpoints: [Endpoint], retiring alsoRetire: [UpstreamPool]) {
        var existing: [HostPort: UpstreamPool] = [:]
        for pool in pools { existing[pool.address] = pool }
        var next: [UpstreamPool] = []
        for endpoint in endpoints {
            let address = HostPort(host: endpoint.host, port: endpoint.port)
            if let pool = existing.removeValue(forKey: address) {
                pool.weight = endpoint.weight
                next.append(pool)
            } else {
                next.append(UpstreamPool(endpoint: endpoint, service: config.name, settings: config.pool, eventLoop: eventLoop, logger: logger))
            }
        }
        let added = next.count - (pools.count - existing.count)
        if added > 0 || !existing.isEmpty {
            logger.info("endpoints changed", metadata: ["service": "\(name)", "endpoints": "\(next.count)",
                                                         "added": "\(added)", "removed": "\(existing.count)"])
        }
        pools = next
        for pool in alsoRetire + Array(existing.values) { pool.retire() }
    }

    /// The service left the configuration: every pool retires (calls in flight finish).
    func retire() {
        isRetired = true
        let old = pools
        pools = []
        for pool in old { pool.retire() }
    }

    /// Shutdown: waiting calls fail, connections close when their streams are done.
    func drain() {
        for pool in pools { pool.drain() }
    }
}
