import FerryConfig
import FerryDiscovery
import FerryH2
import Logging
import NIOCore

/// Everything one event loop owns: its view of each service (with its upstream pools) and its
/// downstream connections. A request accepted on this loop is served entirely from here.
final class LoopContext {
    let eventLoop: EventLoop
    let logger: Logger
    private(set) var services: [String: ServiceRuntime] = [:]
    private var downstreams: [ObjectIdentifier: H2Connection] = [:]
    private(set) var isDraining = false

    init(eventLoop: EventLoop, loopIndex: Int, config: FerryConfig, logger: Logger) {
        self.eventLoop = eventLoop
        self.logger = logger
        for service in config.services {
            services[service.name] = ServiceRuntime(config: service, source: StaticEndpointSource(service),
                                                    eventLoop: eventLoop, loopIndex: loopIndex, logger: logger)
        }
    }

    func register(_ connection: H2Connection) {
        downstreams[ObjectIdentifier(connection)] = connection
        if isDraining { connection.beginGracefulShutdown() }
    }

    func unregister(_ connection: H2Connection) {
        downstreams[ObjectIdentifier(connection)] = nil
    }

    var downstreamConnectionCount: Int { downstreams.count }

    /// Sends every downstream connection the two-step GOAWAY; calls in flight go on.
    func beginDrain() {
        isDraining = true
        for connection in downstreams.values { connection.beginGracefulShutdown() }
    }

    /// Closes whatever is still open (after the drain timeout) and stops the upstream pools.
    func finishDrain() {
        for connection in downstreams.values {
            connection.terminate(errorCode: 0, reason: "drain timeout")
        }
        for service in services.values { service.drain() }
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
