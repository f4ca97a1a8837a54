import FerryConfig
import FerryProxy
import FerryXDS
import FerryXDSClient
import Logging
import NIOCore
import NIOPosix

/// Ferry's configuration from both its sources while `xds:` is set: the file (read at start
/// and on every reload) and the control plane (each accepted update). Either change applies
/// the two combined, as a hot reload: calls in flight finish under what they started with.
actor XDSRunner {
    private let server: FerryServer
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    /// The client's updates; finished when the runner stops.
    private let updates: AsyncStream<XDSResourceCache>.Continuation
    /// The client, on the one loop of `group` it runs on.
    private let client: NIOLoopBound<XDSClient>
    private var file: FerryConfig
    private var resources = XDSResourceCache()

    private init(file: FerryConfig, server: FerryServer, logger: Logger, client: NIOLoopBound<XDSClient>, group: MultiThreadedEventLoopGroup,
                 updates: AsyncStream<XDSResourceCache>.Continuation) {
        self.updates = updates
        self.group = group
        self.server = server
        self.logger = logger
        self.file = file
        self.client = client
    }

    /// Starts the client; the configuration changes as updates arrive.
    /// What `/ready` says until the first configuration is whole (set before the server starts).
    static func notReadyReason(_ xds: XDSConfig) -> String {
        "waiting for the first listeners and clusters from the xDS control plane at \(xds.server)"
    }

    static func start(file: FerryConfig, xds: XDSConfig, server: FerryServer, logger: Logger) async throws -> XDSRunner {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (stream, continuation) = AsyncStream.makeStream(of: XDSResourceCache.self, bufferingPolicy: .bufferingNewest(1))
        let loop = group.next()
        let (client, status): (NIOLoopBound<XDSClient>, XDSClientStatus) = try await loop.submit {
            let client = XDSClient(config: xds, eventLoop: loop, logger: logger, userAgent: FerryBuild.version) { continuation.yield($0) }
            client.reserve(fileConfig: file)
            client.start()
            return (NIOLoopBound(client, eventLoop: loop), client.status)
        }.get()
        let runner = XDSRunner(file: file, server: server, logger: logger, client: client, group: group, updates: continuation)
        server.addMetrics { status.metricsText() }
        Task { await runner.follow(stream) }
        logger.info("xDS client started", metadata: ["server": "\(xds.server)", "node": "\(xds.node.id)"])
        return runner
    }

    private func follow(_ stream: AsyncStream<XDSResourceCache>) async {
        for await resources in stream {
            self.resources = resources
            await apply(reason: "xDS update")
            if resources.hasFirstConfiguration { server.holdReadiness(nil) }
        }
    }

    /// The file changed: what to apply now is the same resources over the new file.
    func compose(file config: FerryConfig) -> FerryConfig {
        if config.xds != file.xds {
            logger.warning("changes to the xds section take effect at the next start")
        }
        file = config
        let client = self.client
        client.eventLoop.execute { client.value.reserve(fileConfig: config) }
        return composed()
    }

    /// The configuration now: the file's and xDS's.
    func composed() -> FerryConfig {
        XDSConfigBuilder.config(file: file, resources: resources)
    }

    private func apply(reason: String) async {
        let config = composed()
        let changes = await server.changes(to: config)
        guard !changes.isEmpty else { return }
        do {
            try await server.reload(config)
            logger.info("configuration updated", metadata: [
                "reason": "\(reason)", "listeners": "\(config.listeners.count)", "services": "\(config.services.count)",
                "lds": "\(resources.versions[.listener] ?? "-")", "rds": "\(resources.versions[.routeConfiguration] ?? "-")",
                "cds": "\(resources.versions[.cluster] ?? "-")", "eds": "\(resources.versions[.clusterLoadAssignment] ?? "-")",
                "changed": "\(changes.joined(separator: "; ").prefix(2000))"])
        } catch {
            logger.error("xDS configuration could not be applied; the running one stays", metadata: ["error": "\(error)"])
        }
    }

    func stop() async {
        let client = self.client
        try? await client.eventLoop.submit { client.value.stop() }.get()
        updates.finish()
        try? await group.shutdownGracefully()
    }
}
