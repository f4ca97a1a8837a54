import FerryUpstream
import FerryConfig
import FerryDiscovery
import FerryPolicy
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FerryH2
import FerryTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The proxy's control side, off the event loops that serve traffic: it applies
/// configurations (the first one and every reload), binds and closes listeners, runs
/// discovery, and hands each event loop immutable plans and endpoint sets as tasks on that
/// loop. One actor, so changes apply one at a time and in order.
actor ControlPlane {
    private struct RunningSource {
        var config: DiscoveryConfig
        var id: Int
        var endpoints: [Endpoint]
        var watcher: EndpointWatcher?
    }

    private struct BoundListener {
        var address: HostPort
        var channel: Channel
    }

    private let loops: [LoopContextBox]
    private let group: EventLoopGroup
    private let dns: DNSClient
    private let logger: Logger
    private(set) var current: FerryConfig?
    private var sources: [String: RunningSource] = [:]
    private var listeners: [String: BoundListener] = [:]
    private var health: [String: ServiceHealth] = [:]
    /// Each listener's open connections under its `max_connections`, by name (kept across
    /// reloads and rebinds: connections accepted earlier count until they close).
    private var admissions: [String: ListenerAdmission] = [:]
    private var nextSourceID = 0
    /// Why each service's discovery last failed or found nothing, while it does (for `/ready`).
    private var discoveryFailures: [String: String] = [:]
    private var stopped = false
    /// The running configuration's TLS material, and its files as last read (rotation).
    private(set) var security = SecurityPlan()
    private var certificateStamps: [FileStamp] = []
    private var rotationWatch: Task<Void, Never>?
    /// How often certificate, key and trust bundle files are checked for a change.
    static let rotationCheckInterval = Duration.seconds(1)
    /// When the running configuration was applied (for `/config`).
    private(set) var loadedAt: ContinuousClock.Instant?
    private(set) var loadedAtWallClock: Int64 = 0
    /// The access log's writer thread, started by the first configuration with an access log.
    private var accessLogThread: AccessLogWriter?
    private var accessLogWriter: AccessLogWriter {
        if let accessLogThread { return accessLogThread }
        let writer = AccessLogWriter()
        accessLogThread = writer
        return writer
    }

    /// The access log's counts (nil: none has run).
    var accessLogCounts: (written: Int, dropped: Int, failedWrites: Int)? {
        accessLogThread.map { let c = $0.counts; return (c.written, c.dropped, c.failed) }
    }

    /// Writes out every access log line handed over, then stops the writer thread.
    func stopAccessLog() async {
        await accessLogThread?.shutdown()
    }

    init(loops: [LoopContextBox], group: EventLoopGroup, controlGroup: EventLoopGroup, logger: Logger) {
        self.loops = loops
        self.group = group
        self.dns = DNSClient(group: controlGroup)
        self.logger = logger
    }

    /// Makes `config` the running configuration. Either all of it applies or, if a listener
    /// cannot be bound, none of it does (the error is thrown and the old one keeps serving).
    /// Returns every listener's bound address, in configuration order.
    func apply(_ config: FerryConfig) async throws -> [SocketAddress] {
        guard !stopped else { throw ShuttingDownError() }
        if let current, current.runtime.eventLoops != config.runtime.eventLoops {
            logger.warning("runtime.event_loops changes take effect at the next start",
                           metadata: ["running": "\(current.runtime.eventLoops.map(String.init) ?? "one per core")"])
        }

        // TLS files and listeners first: the only steps that can fail. New sockets do not
        // accept until the event loops know their listener.
        let stamps = FileStamp.of(config.tlsFiles)
        let security = try SecurityPlan.load(config)
        let accessLog = try config.accessLog.map { try AccessLogSink(config: $0, writer: accessLogWriter) }
        var newlyBound: [String: BoundListener] = [:]
        do {
            for listener in config.listeners where listeners[listener.name]?.address != listener.address {
                do {
                    newlyBound[listener.name] = BoundListener(address: listener.address, channel: try await bind(listener))
                } catch {
                    throw ListenerBindError(listener: listener.name, address: listener.address, underlying: error)
                }
            }
        } catch {
            for bound in newlyBound.values { try? await bound.channel.close() }
            throw error
        }

        // Discovery: a service whose discovery is unchanged keeps its source and endpoints;
        // new sources are read once, all at the same time.
        var nextSources: [String: RunningSource] = [:]
        var fresh: [(String, EndpointSource)] = []
        for service in config.services {
            if let running = sources[service.name], running.config == service.discovery {
                nextSources[service.name] = running
            } else {
                fresh.append((service.name, makeEndpointSource(service.discovery, dns: dns)))
            }
        }
        let firstReads = await withTaskGroup(of: (String, EndpointSnapshot?, String?).self) { group in
            for (name, source) in fresh {
                group.addTask { [logger] in
                    do {
                        let snapshot = try await source.read()
                        guard snapshot.endpoints.isEmpty, let why = snapshot.emptyBecause else { return (name, snapshot, nil) }
                        logger.warning("discovery found no endpoints", metadata: ["service": "\(name)", "source": "\(source)",
                                                                                 "answer": "\(why)"])
                        return (name, snapshot, "\(source): \(why)")
                    } catch {
                        logger.error("discovery failed; the service has no endpoints until it succeeds",
                                     metadata: ["service": "\(name)", "source": "\(source)", "error": "\(error)"])
                        return (name, nil, "\(source): \(error)")
                    }
                }
            }
            var reads: [String: EndpointSnapshot?] = [:]
            for await (name, snapshot, failure) in group {
                reads[name] = snapshot
                discoveryFailures[name] = failure
            }
            return reads
        }
        var started: [(String, EndpointSource, EndpointSnapshot?)] = []
        for (name, source) in fresh {
            let snapshot = firstReads[name] ?? nil
            nextSourceID += 1
            let discovery = config.service(named: name)!.discovery
            nextSources[name] = RunningSource(config: discovery, id: nextSourceID, endpoints: snapshot?.endpoints ?? [], watcher: nil)
            started.append((name, source, snapshot))
        }

        var nextHealth: [String: ServiceHealth] = [:]
        for service in config.services {
            let shared = health[service.name] ?? ServiceHealth(service: service)
            shared.update(service)
            nextHealth[service.name] = shared
        }
        health = nextHealth
        for (name, running) in nextSources {
            nextHealth[name]?.keepOnly(Set(running.endpoints.map { HostPort(host: $0.host, port: $0.port) }))
        }
        let plan = LoopPlan(config: config, endpoints: nextSources.mapValues {
            LoopPlan.ServiceEndpoints(sourceID: $0.id, endpoints: $0.endpoints)
        }, health: nextHealth, security: security, accessLog: accessLog)
        self.security = security
        certificateStamps = stamps
        if !config.tlsFiles.isEmpty { watchCertificates() }
        for box in loops {
            try? await box.eventLoop.submit { box.value.apply(plan) }.get()
        }

        // The loops now serve the new configuration: open the new sockets, close the old ones,
        // stop what is no longer followed and follow what is new.
        for (name, bound) in newlyBound {
            try? await bound.channel.setOption(ChannelOptions.autoRead, value: true).get()
            if let old = listeners[name] { try? await old.channel.close() }
            listeners[name] = bound
        }
        for name in listeners.keys where !config.listeners.contains(where: { $0.name == name }) {
            try? await listeners[name]?.channel.close()
            listeners[name] = nil
        }
        for (name, running) in sources where nextSources[name]?.id != running.id {
            running.watcher?.stop()
        }
        for (name, source, snapshot) in started where snapshot?.refreshAfter != nil || snapshot == nil {
            let id = nextSources[name]!.id
            nextSources[name]!.watcher = EndpointWatcher(source: source, initial: snapshot, service: name, logger: logger,
                                                         onFailure: { [weak self] failure in
                await self?.discoveryFailed(service: name, sourceID: id, failure: failure)
            }) { [weak self] endpoints in
                await self?.endpointsChanged(service: name, sourceID: id, endpoints: endpoints)
            }
        }
        sources = nextSources
        discoveryFailures = discoveryFailures.filter { sources[$0.key] != nil }
        current = config
        loadedAt = .now
        loadedAtWallClock = Self.wallClockSeconds()
        return config.listeners.compactMap { listeners[$0.name]?.channel.localAddress }
    }

    /// A discovery source failed to read (why), or read again after failing (nil).
    private func discoveryFailed(service: String, sourceID: Int, failure: String?) {
        guard sources[service]?.id == sourceID else { return }
        discoveryFailures[service] = failure
    }

    /// A discovery source found a new endpoint set: every loop takes it.
    private func endpointsChanged(service: String, sourceID: Int, endpoints: [Endpoint]) {
        guard !stopped, sources[service]?.id == sourceID else { return }
        sources[service]?.endpoints = endpoints
        health[service]?.keepOnly(Set(endpoints.map { HostPort(host: $0.host, port: $0.port) }))
        for box in loops {
            box.eventLoop.execute { box.value.setEndpoints(service: service, sourceID: sourceID, endpoints: endpoints) }
        }
    }

    /// Each service's endpoints with their failure-accrual state.
    func healthStates() -> [String: [(HostPort, FailureAccrual.State)]] { health.mapValues { $0.snapshot() } }

    /// Each service's ejections so far, by why.
    func ejectionCounts() -> [String: (consecutiveFailures: Int, successRate: Int)] { health.mapValues(\.ejections) }

    /// Each checked endpoint's active health-check verdict and counts.
    func healthCheckStates() -> [String: [(HostPort, HealthCheckState.Status, passed: Int, failed: Int)]] {
        health.mapValues { $0.healthCheckSnapshot() }.filter { !$0.value.isEmpty }
    }

    /// Ready: listeners bound, not shutting down, and every service has endpoints (or allows none).
    func readiness() -> (ready: Bool, reason: String) {
        guard let current, !stopped else { return (false, stopped ? "shutting down" : "starting") }
        for service in current.services where !service.allowNoEndpoints && (sources[service.name]?.endpoints.isEmpty ?? true) {
            let why = discoveryFailures[service.name].map { " (discovery: \($0))" } ?? ""
            return (false, "service \"\(service.name)\" has no endpoints\(why)")
        }
        return (true, "ready")
    }

    private static func wallClockSeconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }

    /// The current endpoints of every service (for `/endpoints` and tests).
    func endpoints() -> [String: [Endpoint]] { sources.mapValues(\.endpoints) }

    // MARK: - Certificate rotation

    private func watchCertificates() {
        guard rotationWatch == nil else { return }
        rotationWatch = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.rotationCheckInterval)
                await self?.checkCertificates()
            }
        }
    }

    /// When a certificate, key or trust bundle file changed: new handshakes use the new
    /// material, open connections keep theirs. Material that does not load (a key that is not
    /// the certificate's, a half-written file) keeps the old in use, logged with the reason;
    /// the next change of the files is tried again.
    func checkCertificates() async {
        guard let current, !stopped else { return }
        let stamps = FileStamp.of(current.tlsFiles)
        guard stamps != certificateStamps else { return }
        let changed = zip(stamps, certificateStamps).filter { $0 != $1 }.map(\.0.path)
        certificateStamps = stamps
        let next: SecurityPlan
        do {
            next = try SecurityPlan.load(current)
        } catch {
            logger.warning("certificate rotation failed; keeping the certificates in use",
                           metadata: ["reason": "\(error)", "changed": "\(changed.joined(separator: ","))"])
            return
        }
        security = next
        for box in loops {
            // A configuration applied meanwhile (this actor runs it while we wait) brought its
            // own material: the rest of the loops keep that.
            guard self.current == current else { return }
            try? await box.eventLoop.submit { box.value.rotate(next) }.get()
        }
        logger.info("certificates reloaded", metadata: ["changed": "\(changed.joined(separator: ","))"])
    }

    /// Each certificate's leaf expiry, for `/metrics`.
    func certificateExpiries() -> [(owner: String, file: String, notAfter: Int)] {
        security.certificateExpiries
    }

    /// Shutdown: listeners close and discovery stops; nothing applies after this.
    func stop() async {
        stopped = true
        rotationWatch?.cancel()
        rotationWatch = nil
        for bound in listeners.values { try? await bound.channel.close() }
        listeners.removeAll()
        for running in sources.values { running.watcher?.stop() }
    }

    private func bind(_ listener: ListenerConfig) async throws -> Channel {
        let name = listener.name
        let admission = admissions[name] ?? ListenerAdmission()
        admissions[name] = admission
        let loops = Dictionary(uniqueKeysWithValues: self.loops.map { (ObjectIdentifier($0.eventLoop), $0) })
        return try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let loop = loops[ObjectIdentifier(channel.eventLoop)]?.value,
                          let listener = loop.listeners[name], !listener.isRemoved else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    guard admission.admit(limit: listener.config.maxConnections) else {
                        loop.connectionRefusedOverLimit(listener)
                        try channel.pipeline.syncOperations.addHandler(ConnectionLimitRefusal())
                        return
                    }
                    let downstream = DownstreamConnection(listener: listener, loop: loop, admission: admission)
                    let connection = H2Connection(role: .server, settings: listener.h2Settings, delegate: downstream,
                                                  headerBlocks: loop.headerBlocks)
                    do {
                        downstream.peer = channel.remoteAddress.map(FerryServer.text) ?? "?"
                        if let tls = listener.tlsContext {
                            // TLS below HTTP/2; the gate reports the handshake, then leaves.
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                            try channel.pipeline.syncOperations.addHandler(ServerHandshakeGate { downstream.tlsHandshakeEnded($0) })
                        } else {
                            // Until the first bytes show an HTTP/2 client (an HTTP/1 one gets a 505).
                            let peer = downstream.peer
                            try channel.pipeline.syncOperations.addHandler(HTTP1Refusal { [unowned loop] line in
                                loop.http1Refused(listener, requestLine: line, peer: peer)
                            })
                        }
                        try channel.pipeline.syncOperations.addHandler(connection)
                    } catch {
                        admission.release()
                        throw error
                    }
                    downstream.started(connection)
                    loop.register(connection, listener: listener)
                }
            }
            .bind(host: listener.address.host, port: listener.address.port)
            .get()
    }
}

struct ShuttingDownError: Error, CustomStringConvertible {
    var description: String { "the proxy is shutting down" }
}

/// A listener that could not be bound, in words: which listener, which address, why.
struct ListenerBindError: Error, CustomStringConvertible {
    let listener: String
    let address: HostPort
    let underlying: Error

    var description: String {
        "listener \"\(listener)\" cannot listen on \(address): \(SystemErrorText.of(underlying))"
    }
}

/// An error from the socket layer as the system says it (`Address already in use`), not NIO's
/// debug text (`bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)`).
enum SystemErrorText {
    static func of(_ error: Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(error)"
    }
}
