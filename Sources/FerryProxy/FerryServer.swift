import FerryConfig
import FerryDiscovery
import FerryH2
import Logging
import NIOCore
import NIOPosix

/// The running proxy: listeners served on every event loop of a group, each loop with its own
/// upstream pools, and a control plane (on its own thread) that applies configurations and
/// runs discovery. Start it, reload it, drain it on shutdown.
public final class FerryServer: Sendable {
    private let group: EventLoopGroup
    private let controlGroup: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let contexts: [LoopContextBox]
    private let control: ControlPlane
    private let initialConfig: FerryConfig

    public init(config: FerryConfig, group: EventLoopGroup, logger: Logger) {
        self.initialConfig = config
        self.group = group
        self.logger = logger
        self.contexts = group.makeIterator().enumerated().map { index, loop in
            LoopContextBox(LoopContext(eventLoop: loop, loopIndex: index, logger: logger))
        }
        self.controlGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.control = ControlPlane(loops: contexts, group: group, controlGroup: controlGroup, logger: logger)
    }

    /// Applies the initial configuration and binds every listener; returns their bound
    /// addresses in configuration order.
    @discardableResult
    public func start() async throws -> [SocketAddress] {
        let addresses = try await control.apply(initialConfig)
        for (listener, address) in zip(initialConfig.listeners, addresses) {
            logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(address)",
                                                "services": "\(listener.serviceNames.joined(separator: ","))"])
        }
        return addresses
    }

    /// Swaps in a new (already validated) configuration. Calls in flight finish under the
    /// configuration they started with; new calls use the new one. Throws, leaving the
    /// running configuration in place, if a new listener cannot be bound.
    @discardableResult
    public func reload(_ config: FerryConfig) async throws -> [SocketAddress] {
        try await control.apply(config)
    }

    /// The configuration serving new calls.
    public var config: FerryConfig {
        get async { await control.current ?? initialConfig }
    }

    /// Every service's current endpoints, as discovery last reported them.
    public func endpoints() async -> [String: [Endpoint]] {
        await control.endpoints()
    }

    /// Graceful shutdown: stop accepting, send every client the two-step GOAWAY, let calls in
    /// flight finish for up to `drainTimeout`, then close what is left.
    public func shutdown(drainTimeout: TimeAmount) async {
        await control.stop()
        for box in contexts {
            try? await box.eventLoop.submit { box.value.beginDrain() }.get()
        }
        let deadline = NIODeadline.now() + drainTimeout
        while NIODeadline.now() < deadline {
            var open = 0
            for box in contexts {
                open += (try? await box.eventLoop.submit { box.value.downstreamConnectionCount }.get()) ?? 0
            }
            if open == 0 { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        for box in contexts {
            try? await box.eventLoop.submit { box.value.finishDrain() }.get()
        }
        try? await controlGroup.shutdownGracefully()
        logger.info("drained")
    }
}
