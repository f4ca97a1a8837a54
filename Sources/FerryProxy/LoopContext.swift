import FerryUpstream
import FerryMetrics
import FerryConfig
import FerryDiscovery
import FerryH2
import Logging
import NIOCore

/// What one event loop needs to take on a configuration: the config itself, and for each
/// service the discovery source it follows and that source's latest endpoints.
struct LoopPlan: Sendable {
    struct ServiceEndpoints: Sendable {
        var sourceID: Int
        var endpoints: [Endpoint]
    }

    var config: FerryConfig
    var endpoints: [String: ServiceEndpoints]
    /// Each service's shared health (failure accrual, load shedding).
    var health: [String: ServiceHealth]
    /// The TLS contexts of listeners and the connectors of services (built from the files).
    var security: SecurityPlan
    /// Where this configuration's access log goes (nil: no access log).
    var accessLog: AccessLogSink?
}

/// Everything one event loop owns: its view of each listener and service (with the upstream
/// pools) and its downstream connections. A request accepted on this loop is served entirely
/// from here; configuration and endpoint changes arrive as tasks on the loop.
final class LoopContext {
    let eventLoop: EventLoop
    let loopIndex: Int
    let logger: Logger
    private(set) var services: [String: ServiceRuntime] = [:]
    private(set) var listeners: [String: ListenerRuntime] = [:]
    private var downstreams: [ObjectIdentifier: (connection: H2Connection, listener: ListenerRuntime)] = [:]
    private(set) var isDraining = false
    /// What every call on this loop shares (the deadline queue behind one timer, error answers).
    let callEnvironment: CallEnvironment
    /// This loop's counts, summed across loops when scraped.
    let metrics = LoopMetrics()
    /// Received header blocks' buffers, reused by every connection on this loop.
    let headerBlocks = HeaderBlockPool()

    init(eventLoop: EventLoop, loopIndex: Int, logger: Logger) {
        self.eventLoop = eventLoop
        self.callEnvironment = CallEnvironment(deadlines: CallDeadlines(eventLoop: eventLoop))
        self.loopIndex = loopIndex
        self.logger = logger
        callEnvironment.denials.logger = logger
    }

    /// Takes on a new configuration: services and listeners that stay are updated in place,
    /// new ones are made, removed ones retire (their calls in flight finish).
    func apply(_ plan: LoopPlan) {
        var next: [String: ServiceRuntime] = [:]
        for service in plan.config.services {
            let endpoints = plan.endpoints[service.name] ?? LoopPlan.ServiceEndpoints(sourceID: -1, endpoints: [])
            let connector = plan.security.connector(for: service.name)
            if let runtime = services[service.name] {
                runtime.update(config: service, sourceID: endpoints.sourceID, endpoints: endpoints.endpoints, connector: connector)
                next[service.name] = runtime
            } else {
                next[service.name] = ServiceRuntime(config: service, health: plan.health[service.name]!, sourceID: endpoints.sourceID,
                                                    endpoints: endpoints.endpoints,
                                                    eventLoop: eventLoop, loopIndex: loopIndex, headerBlocks: headerBlocks,
                                                    logger: logger, connector: connector)
            }
        }
        for (name, runtime) in services where next[name] == nil { runtime.retire() }
        services = next

        let counting = (plan.config.admin?.metrics ?? false) ? metrics : nil
        callEnvironment.metrics = counting
        callEnvironment.accessLog?.flush()
        callEnvironment.accessLog = plan.accessLog.map { AccessLog(sink: $0, eventLoop: eventLoop) }
        var nextListeners: [String: ListenerRuntime] = [:]
        for listener in plan.config.listeners {
            let tls = plan.security.listenerContexts[listener.name]
            if let runtime = listeners[listener.name] {
                runtime.update(config: listener, services: services, metrics: counting, tlsContext: tls)
                nextListeners[listener.name] = runtime
            } else {
                nextListeners[listener.name] = ListenerRuntime(config: listener, services: services, metrics: counting, tlsContext: tls)
            }
        }
        for (name, runtime) in listeners where nextListeners[name] == nil {
            runtime.markRemoved()
            for entry in downstreams.values where entry.listener === runtime { entry.connection.beginGracefulShutdown() }
        }
        listeners = nextListeners
    }

    /// Rotated certificates: new connections use them, open ones keep theirs.
    func rotate(_ security: SecurityPlan) {
        for (name, listener) in listeners { listener.rotate(security.listenerContexts[name]) }
        for (name, service) in services { service.setConnector(security.connector(for: name)) }
    }

    /// Discovery's new endpoints for `service`, if it still follows source `sourceID`.
    func setEndpoints(service: String, sourceID: Int, endpoints: [Endpoint]) {
        guard let runtime = services[service], runtime.sourceID == sourceID else { return }
        runtime.setEndpoints(endpoints)
    }

    func register(_ connection: H2Connection, listener: ListenerRuntime) {
        downstreams[ObjectIdentifier(connection)] = (connection, listener)
        if isDraining || listener.isRemoved { connection.beginGracefulShutdown() }
    }

    func unregister(_ connection: H2Connection) {
        downstreams[ObjectIdentifier(connection)] = nil
    }

    /// When refusing a connection over a listener's limit was last logged: at most once every
    /// 10 s per loop, not once per connection.
    private var refusalLoggedAt: NIODeadline?

    func connectionRefusedOverLimit(_ listener: ListenerRuntime) {
        metrics.countConnectionClosed(listener: listener.name, reason: "connection_limit")
        let now = NIODeadline.now()
        if refusalLoggedAt.map({ now - $0 > .seconds(10) }) ?? true {
            refusalLoggedAt = now
            logger.warning("refusing client connections: the listener's connection limit is reached",
                           metadata: ["listener": "\(listener.name)", "max_connections": "\(listener.config.maxConnections)"])
        }
    }

    private var tlsFailureLog = RateLimitedLog()
    private var http1Log = RateLimitedLog()

    /// A client's TLS handshake failed (or did not negotiate h2): counted, and logged with the
    /// listener and the reason (at most once a second per listener). A client that only
    /// connected and left (a TCP health check) is logged at debug.
    /// An HTTP/1 client on an HTTP/2 listener was answered 505 (logged at most once a second per listener).
    func http1Refused(_ listener: ListenerRuntime, requestLine: String, peer: String) {
        metrics.countConnectionClosed(listener: listener.name, reason: "http1")
        http1Log.warning(logger, kind: listener.name, "HTTP/1.x request on an HTTP/2 listener; answered 505 and closed",
                         ["listener": "\(listener.name)", "peer": "\(peer)", "request": "\(requestLine)"])
    }

    func tlsHandshakeFailed(_ listener: ListenerRuntime, reason: String, peer: String, closedEarly: Bool) {
        metrics.countTLSHandshakeFailure(listener: listener.name)
        let metadata: Logger.Metadata = ["listener": "\(listener.name)", "peer": "\(peer)", "reason": "\(reason)"]
        if closedEarly {
            logger.debug("TLS handshake not finished", metadata: metadata)
        } else {
            tlsFailureLog.warning(logger, kind: listener.name, "TLS handshake failed", metadata)
        }
    }

    var downstreamConnectionCount: Int { downstreams.count }

    /// Gauges read at scrape time: each listener's connections and open streams, each pool's state.
    func gauges() -> LoopGauges {
        var gauges = LoopGauges()
        for entry in downstreams.values {
            gauges.connections[entry.listener.name, default: 0] += 1
            gauges.streams[entry.listener.name, default: 0] += entry.connection.openStreamCount
        }
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        for service in services.values {
            for pool in service.pools {
                var endpoint = LoopGauges.Endpoint(
                    service: service.name, endpoint: pool.endpointName, pending: pool.pending,
                    latencyNanoseconds: pool.latency.current(at: now), connections: pool.openConnectionCount,
                    streams: pool.openStreamCount)
                endpoint.counts = pool.counts
                if pool.lastConnectFailed { endpoint.connectError = pool.lastConnectError }
                gauges.endpoints.append(endpoint)
            }
        }
        return gauges
    }

    /// Sends every downstream connection the two-step GOAWAY; calls in flight go on.
    func beginDrain() {
        isDraining = true
        for entry in downstreams.values { entry.connection.beginGracefulShutdown() }
    }

    /// Closes whatever is still open (after the drain timeout) and stops the upstream pools.
    func finishDrain() {
        for entry in downstreams.values {
            entry.connection.terminate(errorCode: .noError, reason: "drain timeout")
        }
        for service in services.values { service.drain() }
        callEnvironment.accessLog?.flush()
    }
}

/// Hands a `LoopContext` across the boundary of a `@Sendable` closure. It is created before
/// the server starts and afterwards only ever touched on its own event loop.
final class LoopContextBox: @unchecked Sendable {
    private let context: LoopContext

    init(_ context: LoopContext) {
        self.context = context
    }

    /// The loop this context belongs to (safe from any thread: it never changes).
    var eventLoop: EventLoop { context.eventLoop }

    var value: LoopContext {
        context.eventLoop.preconditionInEventLoop()
        return context
    }
}
