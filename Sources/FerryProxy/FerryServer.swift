import FerryAdmin
import FerryMetrics
import FerryConfig
import FerryDiscovery
import FerryH2
import FerryPolicy
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    private let admin = NIOLockedValueBox<AdminServer?>(nil)
    /// What else the process reports (the xDS client): why it is not ready yet (nil: nothing
    /// holds readiness back) and its metrics, appended to `/metrics`.
    private let extraStatus = NIOLockedValueBox<(notReady: String?, metrics: (@Sendable () -> String)?)>((nil, nil))

    /// Holds `/ready` back with `reason` until called again with nil (the xDS client does
    /// until its first configuration arrives).
    public func holdReadiness(_ reason: String?) {
        extraStatus.withLockedValue { $0.notReady = reason }
    }

    /// Metrics text (Prometheus exposition lines) appended to every `/metrics` scrape.
    public func addMetrics(_ render: @escaping @Sendable () -> String) {
        extraStatus.withLockedValue { $0.metrics = render }
    }

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
            logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(Self.text(address))",
                                                "services": "\(listener.serviceNames.joined(separator: ","))"])
        }
        if let adminConfig = initialConfig.admin {
            let server = try await AdminServer.start(host: adminConfig.address.host, port: adminConfig.address.port,
                                                     group: controlGroup) { [weak self] path in
                await self?.adminResponse(path) ?? AdminServer.Response(status: .serviceUnavailable, contentType: "text/plain", body: "stopped\n")
            }
            admin.withLockedValue { $0 = server }
            logger.info("admin listening", metadata: ["address": "\(server.channel.localAddress.map { "\($0)" } ?? "?")"])
        }
        return addresses
    }

    /// The admin listener's bound address (nil without an admin section).
    public var adminAddress: SocketAddress? { admin.withLockedValue { $0?.channel.localAddress } }

    // MARK: - Admin

    /// Ferry's metrics in the Prometheus text format, summed over the event loops.
    public func metricsText() async -> String {
        var loops: [(LoopMetrics.Snapshot, LoopGauges)] = []
        for box in contexts {
            if let taken = try? await box.eventLoop.submit({ (box.value.metrics.snapshot, box.value.gauges()) }).get() {
                loops.append(taken)
            }
        }
        var wallClock = timespec()
        clock_gettime(CLOCK_REALTIME, &wallClock)
        var inputs = MetricsExposition.Inputs(loops: loops, health: await control.healthStates(), now: 0,
                                              certificates: await control.certificateExpiries(), wallClockSeconds: Int(wallClock.tv_sec))
        inputs.healthChecks = await control.healthCheckStates()
        inputs.ejections = await control.ejectionCounts()
        inputs.version = FerryBuild.version
        let counts = reloads.withLockedValue { $0 }
        inputs.reloads = (counts.ok, counts.rejected, await control.loadedAtWallClock)
        inputs.process = ProcessMetrics.current()
        inputs.accessLog = await control.accessLogCounts
        return MetricsExposition.render(inputs) + (extraStatus.withLockedValue { $0.metrics }?() ?? "")
    }

    func adminResponse(_ path: String) async -> AdminServer.Response {
        switch path {
        case "/metrics":
            return .init(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: await metricsText())
        case "/live":
            return .init(status: .ok, contentType: "text/plain; charset=utf-8", body: "live\n")
        case "/ready":
            var (ready, reason) = await control.readiness()
            if ready, let held = extraStatus.withLockedValue({ $0.notReady }) { (ready, reason) = (false, held) }
            return .init(status: ready ? .ok : .serviceUnavailable, contentType: "text/plain; charset=utf-8", body: reason + "\n")
        case "/config":
            return .init(status: .ok, contentType: "application/json", body: await configJSON())
        case "/endpoints":
            return .init(status: .ok, contentType: "application/json", body: await endpointsJSON())
        default:
            return .init(status: .notFound, contentType: "text/plain; charset=utf-8",
                         body: "not found; try /metrics, /ready, /live, /config, /endpoints\n")
        }
    }

    private func configJSON() async -> String {
        let config = await self.config
        let loadedAt = await control.loadedAtWallClock
        let lines = ConfigSummary.lines(config).map { JSON.string($0) }.joined(separator: ",\n    ")
        func versions(_ map: [String: String]) -> String {
            "{" + map.sorted { $0.key < $1.key }.map { "\(JSON.string($0.key)): \(JSON.string($0.value))" }.joined(separator: ", ") + "}"
        }
        // Where each listener and service came from: xDS (with the versions) or, if not named here, the file.
        let fromXDS = config.xds == nil ? "" : "  \"from_xds\": {\"listeners\": \(versions(config.fromXDS.listeners)), "
            + "\"services\": \(versions(config.fromXDS.services))},\n"
        return "{\n  \"source\": \(JSON.string(config.source)),\n  \"loaded_at_unix\": \(loadedAt),\n" + fromXDS
            + "  \"summary\": [\n    \(lines)\n  ]\n}\n"
    }

    private func endpointsJSON() async -> String {
        var gauges: [LoopGauges.Endpoint] = []
        for box in contexts {
            if let taken = try? await box.eventLoop.submit({ box.value.gauges().endpoints }).get() { gauges += taken }
        }
        let health = await control.healthStates()
        let checks = await control.healthCheckStates()
        let endpoints = await self.endpoints()
        let byEndpoint = Dictionary(grouping: gauges) { "\($0.service) \($0.endpoint)" }
        var services: [String] = []
        for (service, list) in endpoints.sorted(by: { $0.key < $1.key }) {
            let states = Dictionary(health[service] ?? [], uniquingKeysWith: { a, _ in a })
            let checked = Dictionary((checks[service] ?? []).map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
            let items = list.map { endpoint -> String in
                let address = HostPort(host: endpoint.host, port: endpoint.port)
                let mine = byEndpoint["\(service) \(address.description)"] ?? []
                var state = states[address].map(MetricsExposition.stateName) ?? "active"
                let connections = mine.map(\.connections).reduce(0, +)
                // Failing to connect on a loop, and no connection up anywhere: not "active".
                let connectError = connections == 0 ? mine.lazy.compactMap(\.connectError).first : nil
                if state == "active", connectError != nil { state = "unreachable" }
                let latency = mine.isEmpty ? 0 : mine.map(\.latencyNanoseconds).reduce(0, +) / Double(mine.count) / 1e6
                // With no connection the estimate is only old samples decaying: not shown.
                let estimate = connections == 0 ? "null" : PrometheusWriter.format((latency * 1000).rounded() / 1000)
                var check: String = checked[address].map(Self.healthCheckJSON) ?? ""
                if let connectError { check += ", \"connect_error\": \(JSON.string(connectError))" }
                let head = "{\"address\": \(JSON.string(address.description)), \"weight\": \(endpoint.weight), \"state\": \"\(state)\", "
                let load = "\"pending\": \(mine.map(\.pending).reduce(0, +)), \"latency_estimate_ms\": \(estimate), "
                let links = "\"connections\": \(connections), \"streams\": \(mine.map(\.streams).reduce(0, +))"
                return head + load + links + check + "}"
            }
            services.append("  \(JSON.string(service)): [\n    " + items.joined(separator: ",\n    ") + "\n  ]")
        }
        return "{\n" + services.joined(separator: ",\n") + "\n}\n"
    }

    /// `, "health_check": "unhealthy", "health_check_reason": "..."` for a checked endpoint.
    private static func healthCheckJSON(_ status: HealthCheckState.Status) -> String {
        let reason: String
        if case .unhealthy(let why) = status { reason = ", \"health_check_reason\": \(JSON.string(why))" } else { reason = "" }
        return ", \"health_check\": \"\(MetricsExposition.healthCheckName(status))\"" + reason
    }

    /// Swaps in a new (already validated) configuration. Calls in flight finish under the
    /// configuration they started with; new calls use the new one. Throws, leaving the
    /// running configuration in place, if a new listener cannot be bound.
    @discardableResult
    public func reload(_ config: FerryConfig) async throws -> [SocketAddress] {
        let old = await self.config
        let addresses: [SocketAddress]
        do {
            addresses = try await control.apply(config)
        } catch {
            recordRejectedReload()
            throw error
        }
        reloads.withLockedValue { $0.ok += 1 }
        let before = Set(old.listeners.map { "\($0.name) \($0.address)" })
        for (listener, address) in zip(config.listeners, addresses) where !before.contains("\(listener.name) \(listener.address)") {
            logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(Self.text(address))",
                                                "services": "\(listener.serviceNames.joined(separator: ","))"])
        }
        return addresses
    }

    /// What `reload(config)` would change, for its log line.
    public func changes(to config: FerryConfig) async -> [String] {
        ConfigChanges.describe(from: await self.config, to: config)
    }

    /// Reloads applied and refused (a file that did not validate, a listener that could not bind).
    private let reloads = NIOLockedValueBox<(ok: Int, rejected: Int)>((0, 0))

    public func recordRejectedReload() {
        reloads.withLockedValue { $0.rejected += 1 }
    }

    static func text(_ address: SocketAddress) -> String {
        address.ipAddress.map { address.protocol == .inet6 ? "[\($0)]:\(address.port ?? 0)" : "\($0):\(address.port ?? 0)" } ?? "\(address)"
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
        // /ready answers 503 from here on; the admin listener stays up until the drain is over.
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
        await control.stopAccessLog()
        if let server = admin.withLockedValue({ $0 }) { await server.stop() }
        try? await controlGroup.shutdownGracefully()
        logger.info("drained")
    }
}
