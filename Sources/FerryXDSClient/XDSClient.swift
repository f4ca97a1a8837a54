import FerryConfig
import FerryDiscovery
import FerryGRPC
import FerryH2
import FerryUpstream
import FerryXDS
import Logging
import NIOCore

/// Ferry's xDS client: one `StreamAggregatedResources` stream to the control plane over
/// FerryH2's client role, driven by `ADSStateMachine`. Listeners and clusters are subscribed
/// to whole (wildcard); the route tables the listeners name and the endpoint assignments the
/// clusters name follow. Every accepted change hands the whole resource cache to `onChange`,
/// which applies it as a hot reload; a rejected one changes nothing.
///
/// Runs on one event loop of its own (the control loop, not one serving traffic): every method
/// is called there. Construction is the only exception.
public final class XDSClient: H2StreamDelegate {
    public typealias ChangeHandler = @Sendable (XDSResourceCache) -> Void

    private let config: XDSConfig
    private let node: XDSNode
    private let eventLoop: EventLoop
    private let logger: Logger
    private let onChange: ChangeHandler
    private let pool: UpstreamPool
    private let clock: MonotonicClock
    private let headers: H2Headers
    private var machine: ADSStateMachine
    private var cache = XDSResourceCache()
    /// What each type's latest response decoded, until the state machine's verdict.
    private var staged: XDSResourceCache.Staged?

    private enum Phase {
        case idle
        /// Waiting for a connection; requests wait in `outbox`.
        case connecting
        case open(H2Stream, status: Int, pending: ByteBuffer)
        case stopped
    }

    private var phase = Phase.idle
    private var outbox: [ADSRequest] = []
    private var wakeUp: Scheduled<Void>?
    private var wakeUpAt: Int64?
    /// The largest DiscoveryResponse taken (100,000 endpoints are about 5 MB).
    public static let maxMessageBytes = 64 << 20

    /// Counts for `/metrics`, `/ready` and tests.
    public let status = XDSClientStatus()

    public convenience init(config: XDSConfig, eventLoop: EventLoop, logger: Logger, userAgent: String, onChange: @escaping ChangeHandler) {
        self.init(config: config, eventLoop: eventLoop, logger: logger, userAgent: userAgent, clock: .system, connector: .tcp, onChange: onChange)
    }

    /// `clock` and `connector`: the time and the way to the server (tests: virtual and in memory).
    package init(config: XDSConfig, eventLoop: EventLoop, logger: Logger, userAgent: String, clock: MonotonicClock,
                 connector: UpstreamConnector, onChange: @escaping ChangeHandler) {
        self.clock = clock
        self.config = config
        var node = XDSNode(id: config.node.id, cluster: config.node.cluster)
        node.metadata = config.node.metadata
        node.region = config.node.region
        node.zone = config.node.zone
        node.userAgentVersion = userAgent
        self.node = node
        self.eventLoop = eventLoop
        self.logger = logger
        self.onChange = onChange
        var settings = ADSStateMachine.Settings()
        settings.resourceTimeout = config.resourceTimeout.totalNanoseconds
        self.machine = ADSStateMachine(settings: settings, seed: UInt64(truncatingIfNeeded: clock.now()))
        let service = ServiceConfig(name: "xds", endpoints: [])
        let endpoint = Endpoint(host: config.server.host, port: config.server.port)
        var pool = PoolConfig()
        pool.idleTimeout = .seconds(86_400 * 365)   // the stream keeps it busy; never closed for idleness
        self.pool = UpstreamPool(endpoint: endpoint, service: "xds", settings: pool, balancer: BalancerConfig(), clock: clock,
                                 connector: connector,
                                 health: EndpointHealth(address: config.server, settings: FailureAccrualConfig(), service: ServiceHealth(service: service)),
                                 eventLoop: eventLoop, logger: logger)
        self.headers = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", DiscoveryMessages.streamPath),
                                  (":authority", config.server.description), ("content-type", "application/grpc"),
                                  ("te", "trailers"), ("user-agent", "ferry/\(userAgent)")])
    }

    /// The resources held now.
    public var resources: XDSResourceCache { cache }

    /// Names and addresses the file uses (its listeners' and the admin server's): xDS resources
    /// that would take them are refused.
    public func reserve(fileConfig: FerryConfig) {
        cache.fileListenerNames = Set(fileConfig.listeners.map(\.name))
        cache.fileListenerAddresses = Set(fileConfig.listeners.map(\.address) + (fileConfig.admin.map { [$0.address] } ?? []))
        cache.fileServiceNames = Set(fileConfig.services.map(\.name))
    }

    public func start() {
        guard case .idle = phase else { return }
        var actions = machine.subscribe(.cluster, to: .all, now: now())
        actions += machine.subscribe(.listener, to: .all, now: now())
        actions += machine.start(now: now())
        perform(actions)
    }

    public func stop() {
        perform(machine.stop())
        if case .connecting = phase { pool.cancel(self) }
        phase = .stopped
        wakeUp?.cancel()
        wakeUp = nil
        pool.retire()
    }

    // MARK: Actions

    private func perform(_ actions: [ADSAction]) {
        var changed = false
        for action in actions {
            switch action {
            case .openStream:
                open()
            case .send(let request):
                send(request)
            case .apply(let update):
                guard let staged, staged.response.typeURL == update.type.typeURL else { continue }
                self.staged = nil
                cache.commit(staged, update)
                changed = true
                let held = cache.count(of: update.type)
                status.update {
                    $0.accepted[update.type.shortName, default: 0] += 1
                    $0.resources[update.type.shortName] = held
                }
                logger.info("xDS update accepted", metadata: [
                    "type": "\(update.type.shortName)", "version": "\(update.versionInfo)", "resources": "\(update.updated.count)",
                    "removed": "\(update.removed.count)"])
                if !staged.ignored.isEmpty {
                    logger.notice("xDS resources set what Ferry ignores", metadata: [
                        "type": "\(update.type.shortName)", "version": "\(update.versionInfo)",
                        "ignored": "\(staged.ignored.prefix(20).joined(separator: "; "))"])
                }
            case .resourcesDoNotExist(let type, let names):
                cache.remove(type, names)
                changed = true
                let held = cache.count(of: type)
                status.update { $0.resources[type.shortName] = held }
                logger.warning("xDS resources do not exist; going on without them", metadata: [
                    "type": "\(type.shortName)", "names": "\(names.prefix(20).joined(separator: ", "))"])
            case .rejected(let type, let nonce, let detail):
                staged = nil
                let short = XDSResourceType(rawValue: type)?.shortName ?? "other"
                status.update { $0.rejected[short, default: 0] += 1 }
                logger.error("xDS response rejected; the last good configuration keeps serving", metadata: [
                    "type": "\(type.prefix(200))", "nonce": "\(nonce.prefix(100))", "error": "\(detail)"])
            case .closeStream:
                closeStream()
            }
        }
        if changed {
            followReferences()
            onChange(cache)
        }
        rearm()
    }

    /// Asks for the route tables and assignments the held listeners and clusters name (the
    /// subscriptions only grow to include them; an unused one is harmless).
    private func followReferences() {
        let tables = cache.wantedRouteTables, assignments = cache.wantedAssignments
        var actions: [ADSAction] = []
        if !tables.isEmpty { actions += machine.subscribe(.routeConfiguration, to: .named(tables), now: now()) }
        if !assignments.isEmpty { actions += machine.subscribe(.clusterLoadAssignment, to: .named(assignments), now: now()) }
        if !actions.isEmpty { perform(actions) }
    }

    private func open() {
        closeStream()
        outbox = []
        phase = .connecting
        pool.acquire(self)
    }

    private func closeStream() {
        if case .open(let stream, _, _) = phase {
            phase = .idle
            stream.reset(.cancel)
        }
    }

    private func send(_ request: ADSRequest) {
        guard case .open(let stream, _, _) = phase else {
            outbox.append(request)
            return
        }
        let bytes = DiscoveryMessages.framed(DiscoveryMessages.encode(request, node: node))
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        stream.sendData(buffer)
    }

    private func streamEnded(_ why: String) {
        if case .stopped = phase { return }
        phase = .idle
        status.update { $0.connected = false }
        logger.warning("xDS stream ended; the last configuration keeps serving, reconnecting", metadata: [
            "server": "\(config.server)", "reason": "\(why)"])
        perform(machine.streamClosed(now: now()))
    }

    private func rearm() {
        guard let at = machine.nextWakeUp else {
            wakeUp?.cancel()
            wakeUp = nil
            wakeUpAt = nil
            return
        }
        guard at != wakeUpAt else { return }
        wakeUp?.cancel()
        wakeUpAt = at
        wakeUp = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .nanoseconds(max(at - now(), 0))) { [weak self] in
            guard let self else { return }
            self.wakeUp = nil
            self.wakeUpAt = nil
            self.perform(self.machine.timerFired(now: self.now()))
        }
    }

    private func now() -> Int64 { clock.now() }

    // MARK: Receiving

    private func received(_ message: ArraySlice<UInt8>) {
        switch DiscoveryMessages.decodeResponse(message) {
        case .success(let response):
            var staged = cache.stage(response)
            // A file a TLS context names that cannot be read would fail the reload after the
            // ACK: it is a problem of the response instead.
            for (resource, file) in staged.tlsFiles where (try? TextFile.bytes(file)) == nil {
                staged.response.problems.append("\(resource): \(file.prefix(300)) cannot be read")
            }
            self.staged = staged
            perform(machine.receive(staged.response, now: now()))
        case .failure(let problem):
            // Nothing in it can be trusted (not even its nonce): end the stream, as gRPC's
            // client does for a response it cannot parse.
            logger.error("xDS response does not decode", metadata: ["error": "\(problem)"])
            closeStream()
            streamEnded("a response that does not decode")
        }
    }


    // MARK: H2StreamDelegate

    public func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        guard case .open(let current, _, let pending) = phase, current === stream else { return }
        let status = headers.first(":status").flatMap { Int($0) } ?? 0
        phase = .open(stream, status: status, pending: pending)
        if endStream { ended(stream, trailers: headers, status: status) }
    }

    public func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        stream.consume(data.readableBytes)
        guard case .open(let current, let status, var pending) = phase, current === stream, status == 200 else { return }
        phase = .idle   // `pending` is uniquely referenced while messages are taken out
        pending.writeImmutableBuffer(data)
        while pending.readableBytes >= 5 {
            let compressed = pending.getInteger(at: pending.readerIndex, as: UInt8.self)!
            let length = Int(pending.getInteger(at: pending.readerIndex + 1, as: UInt32.self)!)
            guard compressed == 0, length <= Self.maxMessageBytes else {
                stream.reset(.cancel)
                let why = compressed != 0 ? "a compressed message (Ferry asks for none)" : "a message of \(length) bytes (at most \(Self.maxMessageBytes))"
                return streamEnded("the control plane sent \(why)")
            }
            guard pending.readableBytes >= 5 + length else { break }
            pending.moveReaderIndex(forwardBy: 5)
            let message = pending.readBytes(length: length)!
            phase = .open(stream, status: status, pending: ByteBuffer())
            received(message[...])
            guard case .open(let still, _, _) = phase, still === stream else { return }
            phase = .idle
        }
        pending.discardReadBytes()
        phase = .open(stream, status: status, pending: pending)
    }

    public func streamReceivedEnd(_ stream: H2Stream) {
        guard case .open(let current, let status, _) = phase, current === stream else { return }
        ended(stream, trailers: nil, status: status)
    }

    public func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        guard case .open(let current, let status, _) = phase, current === stream else { return }
        ended(stream, trailers: trailers, status: status)
    }

    public func streamSentData(_ stream: H2Stream, byteCount: Int) {}

    public func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        guard case .open(let current, _, _) = phase, current === stream else { return }
        streamEnded("stream closed (\(error.map { "\($0)" } ?? "no trailers"))")
    }

    fileprivate func ended(_ stream: H2Stream, trailers: H2Headers?, status: Int) {
        phase = .idle
        stream.reset(.cancel)   // our half is still open; the server is done with the stream
        let grpcStatus = trailers?.first("grpc-status") ?? "none"
        let message = trailers?.first("grpc-message") ?? ""
        streamEnded("the control plane ended the stream: HTTP \(status), grpc-status \(grpcStatus) \(message.prefix(200))")
    }
}

extension XDSClient: UpstreamWaiter {
    package var fairnessKey: ObjectIdentifier { ObjectIdentifier(self) }

    package func upstreamReady(_ connection: H2Connection) {
        guard case .connecting = phase else { return }
        guard let stream = connection.openStream(headers: headers, endStream: false, delegate: self) else {
            return streamEnded("the connection refused a new stream")
        }
        status.update {
            $0.streamsOpened += 1
            $0.connected = true
        }
        phase = .open(stream, status: 0, pending: ByteBuffer())
        let waiting = outbox
        outbox = []
        for request in waiting { send(request) }
    }

    package func upstreamFailed(_ failure: UpstreamFailure) {
        guard case .connecting = phase else { return }
        switch failure {
        case .connectFailed(_, let reason): streamEnded("connect failed: \(reason)")
        case .overloaded: streamEnded("no connection")
        case .shuttingDown: stop()
        }
    }

    package func poolRetired() {}
}
