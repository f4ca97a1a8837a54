import FerryGRPC

/// Reads and validates Ferry's YAML configuration. Every error is a `ConfigError` naming the
/// file, line, column and key.
public enum ConfigLoader {
    public static func load(path: String) throws -> FerryConfig {
        try parse(yaml: try readText(path), source: path, directory: TextFile.directory(of: path))
    }

    /// The file's text, or a `ConfigError` naming the file and why it could not be read.
    static func readText(_ path: String) throws -> String {
        do {
            return try TextFile.read(path)
        } catch {
            throw ConfigError(file: path, line: 0, column: 0, key: "", message: "cannot read the file: \(error)")
        }
    }

    /// Parses configuration text; relative paths in it (discovery files) resolve against `directory`.
    public static func parse(yaml: String, source: String, directory: String = "") throws -> FerryConfig {
        try decode(try compose(yaml: yaml, source: source), source: source, directory: directory)
    }

    static func compose(yaml: String, source: String) throws -> YAMLValue {
        let root: YAMLNode?
        do {
            root = try YAMLComposer.compose(yaml)
        } catch {
            throw ConfigError(file: source, line: error.line, column: error.column, key: "", message: "YAML syntax: \(error.problem)"
                              + Self.syntaxHint(error.problem))
        }
        guard let root else { throw ConfigError(file: source, line: 0, column: 0, key: "", message: "the file is empty") }
        return YAMLValue(node: root, path: "", file: source)
    }

    private static func decode(_ root: YAMLValue, source: String, directory: String) throws -> FerryConfig {
        var errors: [ConfigError] = []
        let config = try decode(root, source: source, directory: directory, errors: &errors)
        if let first = errors.first { throw first }
        return config!
    }

    /// Every error in the file, in the order they appear, and the configuration when there
    /// are none (`ferry check`). Sections and each service and listener are checked on their
    /// own, so one mistake does not hide the next; within one item the first error is reported.
    public static func check(path: String) -> (config: FerryConfig?, errors: [ConfigError]) {
        do {
            let root = try compose(yaml: try readText(path), source: path)
            var errors: [ConfigError] = []
            let config = try decode(root, source: path, directory: TextFile.directory(of: path), errors: &errors)
            let sorted = errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
            return (sorted.isEmpty ? config : nil, sorted)
        } catch let error as ConfigError {
            return (nil, [error])
        } catch {
            return (nil, [ConfigError(file: path, line: 0, column: 0, key: "", message: "\(error)")])
        }
    }

    /// Decodes what it can, adding each section's or item's error to `errors`; nil when a
    /// required part is missing or broken.
    private static func decode(_ root: YAMLValue, source: String, directory: String, errors: inout [ConfigError]) throws -> FerryConfig? {
        func attempt<T>(_ body: () throws -> T) -> T? {
            do {
                return try body()
            } catch let error as ConfigError {
                errors.append(error)
                return nil
            } catch {
                errors.append(root.error("\(error)"))
                return nil
            }
        }
        let top = try root.mapping(allowed: ["admin", "runtime", "log", "access_log", "listeners", "services", "xds"], errors: &errors)
        let xds = attempt { try top["xds"].map(decodeXDS) } ?? nil
        // With a control plane, the file may leave listeners and services to it.
        let leavesToXDS = top["xds"] != nil
        let admin = attempt { try top["admin"].map(decodeAdmin) } ?? nil
        let runtime = attempt { try top["runtime"].map(decodeRuntime) ?? RuntimeConfig() } ?? RuntimeConfig()
        let log = attempt { try top["log"].map(decodeLog) ?? LogConfig() } ?? LogConfig()
        let accessLog = attempt { try top["access_log"].flatMap { try decodeAccessLog($0, configDirectory: directory) } } ?? nil

        var services: [ServiceConfig] = []
        // A service that did not decode still exists for the listeners' references (no
        // second error about it), but makes the whole configuration invalid.
        var standIns: [ServiceConfig] = []
        if let servicesValue = leavesToXDS ? top["services"] : attempt({ try top.required("services") }),
           let entries = attempt({ try servicesValue.mapping(allowed: [String](Self.anyKey(servicesValue))).entries }) {
            for (name, value) in entries {
                guard isValidName(name) else {
                    errors.append(value.error("service names use letters, digits, '-', '_' and '.'"))
                    continue
                }
                if let service = attempt({ try decodeService(name: name, value, configDirectory: directory) }) {
                    services.append(service)
                } else {
                    standIns.append(ServiceConfig(name: name, endpoints: []))
                }
            }
            if entries.isEmpty && !leavesToXDS { errors.append(servicesValue.error("at least one service is required")) }
        }

        var listeners: [ListenerConfig] = []
        if let listenersValue = leavesToXDS ? top["listeners"] : attempt({ try top.required("listeners") }), let items = attempt({ try listenersValue.sequence() }) {
            for item in items {
                guard let listener = attempt({ try decodeListener(item, services: services + standIns, configDirectory: directory) }) else {
                    continue
                }
                if listeners.contains(where: { $0.name == listener.name }) {
                    errors.append(item.error("a listener named \"\(listener.name)\" is already defined"))
                } else if listeners.contains(where: { $0.address == listener.address }) {
                    errors.append(item.error("another listener already uses \(listener.address)"))
                } else {
                    listeners.append(listener)
                }
            }
            if items.isEmpty && !leavesToXDS { errors.append(listenersValue.error("at least one listener is required")) }
        }
        if let admin, listeners.contains(where: { $0.address == admin.address }) {
            errors.append((top["admin"] ?? root).error("the admin address \(admin.address) is also a data listener's address"))
        }
        guard errors.isEmpty else { return nil }
        var config = FerryConfig(admin: admin, runtime: runtime, listeners: listeners, services: services, source: source)
        config.log = log
        config.accessLog = accessLog
        config.xds = xds
        return config
    }

    /// Every key of a mapping (for mappings whose keys are names, not fields).
    static func anyKey(_ value: YAMLValue) -> [String] {
        guard case .mapping(let mapping) = value.node.content else { return [] }
        return mapping.compactMap { if case .scalar(let key) = $0.key.content { return key } else { return nil } }
    }

    private static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { isLetterOrDigit($0) || "-_.".unicodeScalars.contains($0) }
    }

    /// Letters, marks and numbers of any script (Unicode categories L*, M*, N*).
    private static func isLetterOrDigit(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return false
        }
    }

    private static func decodeAdmin(_ value: YAMLValue) throws -> AdminConfig {
        let m = try value.mapping(allowed: ["address", "metrics", "access_log"])
        var admin = AdminConfig(address: try m.required("address").hostPort())
        if let v = m["metrics"] { admin.metrics = try v.bool() }
        if let v = m["access_log"] {
            throw v.error("the access log has its own top-level section now: write access_log: at the top level, not under admin")
        }
        return admin
    }

    private static func decodeLog(_ value: YAMLValue) throws -> LogConfig {
        let m = try value.mapping(allowed: ["level", "format"])
        var log = LogConfig()
        if let v = m["level"] {
            let level = try v.string()
            guard LogConfig.levels.contains(level) else {
                throw v.error("level is one of \(LogConfig.levels.joined(separator: ", ")), not \"\(level)\"")
            }
            log.level = level
        }
        if let v = m["format"] { log.format = try logFormat(v) }
        return log
    }

    private static func logFormat(_ value: YAMLValue) throws -> LogFormat {
        let text = try value.string()
        guard let format = LogFormat(rawValue: text) else { throw value.error("format is text (logfmt) or json, not \"\(text)\"") }
        return format
    }

    /// `access_log: true`, or `{path, format, sample, request_id}`; false or absent: off.
    private static func decodeAccessLog(_ value: YAMLValue, configDirectory: String) throws -> AccessLogConfig? {
        var log = AccessLogConfig()
        if case .scalar = value.node.content {
            return try value.bool() ? log : nil
        }
        let m = try value.mapping(allowed: ["path", "format", "sample", "request_id"])
        if let v = m["path"] {
            let path = try v.string()
            switch path {
            case "stdout", "-": log.destination = .stdout
            case "stderr": log.destination = .stderr
            case "": throw v.error("path is a file, stdout or stderr")
            default: log.destination = .file(resolve(path, against: configDirectory))
            }
        }
        if let v = m["format"] { log.format = try logFormat(v) }
        if let sample = m["sample"] {
            guard let value = Double(try sample.string()), value > 0, value <= 1 else {
                throw sample.error("sample is the share of calls logged: a number above 0 and at most 1")
            }
            log.sample = value
        }
        if let v = m["request_id"] {
            let text = try v.string()
            switch text {
            case "generate": log.generateRequestID = true
            case "forward": log.generateRequestID = false
            default: throw v.error("request_id is generate (a call without x-request-id gets one) or forward (only logged and passed on), not \"\(text)\"")
            }
        }
        return log
    }

    private static func decodeRuntime(_ value: YAMLValue) throws -> RuntimeConfig {
        let m = try value.mapping(allowed: ["event_loops", "drain_timeout", "watch_config"])
        var runtime = RuntimeConfig()
        if let v = m["watch_config"] { runtime.watchConfig = try v.bool() }
        runtime.eventLoops = try m["event_loops"]?.int(in: 1...256)
        if let v = m["drain_timeout"] { runtime.drainTimeout = try v.duration(max: .seconds(3600)) }
        return runtime
    }

    private static func decodeHTTP2(_ value: YAMLValue?) throws -> HTTP2Config {
        var config = HTTP2Config()
        guard let value else { return config }
        let m = try value.mapping(allowed: ["max_concurrent_streams", "initial_stream_window", "connection_window",
                                            "max_header_list_size", "max_frame_size"])
        if let v = m["max_concurrent_streams"] { config.maxConcurrentStreams = UInt32(try v.int(in: 1...1_000_000)) }
        if let v = m["initial_stream_window"] { config.initialStreamWindow = UInt32(try v.size(in: 65_535...(1 << 31 - 1))) }
        if let v = m["connection_window"] { config.connectionWindow = UInt32(try v.size(in: 65_535...(1 << 31 - 1))) }
        if let v = m["max_header_list_size"] { config.maxHeaderListSize = UInt32(try v.size(in: 1024...(16 << 20))) }
        if let v = m["max_frame_size"] { config.maxFrameSize = UInt32(try v.size(in: 16_384...16_777_215)) }
        return config
    }

    private static func decodeListener(_ value: YAMLValue, services: [ServiceConfig], configDirectory: String) throws -> ListenerConfig {
        let m = try value.mapping(allowed: ["name", "address", "service", "routes", "max_deadline", "deadline_header", "http2",
                                            "max_connections", "handshake_timeout", "idle_timeout", "tls", "authorization"])
        let nameValue = try m.required("name")
        let name = try nameValue.string()
        guard isValidName(name) else { throw nameValue.error("listener names use letters, digits, '-', '_' and '.'") }
        var routes: [RouteConfig] = []
        var routeValues: [YAMLValue] = []
        if let routesValue = m["routes"] {
            for (index, item) in try routesValue.sequence().enumerated() {
                routes.append(try decodeRoute(item, services: services, policyName: "listeners.\(name).routes[\(index)].authorization"))
                routeValues.append(item)
            }
        }
        if let serviceValue = m["service"] {
            routes.append(RouteConfig(match: RouteMatch(), service: try serviceReference(serviceValue, services: services)))
            routeValues.append(serviceValue)
        }
        guard !routes.isEmpty else {
            throw value.error("a listener needs \"service\" (where every request goes) or \"routes\"")
        }
        if let (first, second) = RouteTable.firstTie(in: routes) {
            throw routeValues[second].error("matches exactly what \(routeValues[first].path) matches (\(routes[first].match.description)); "
                                             + "the most specific route wins, so two with the same match are ambiguous")
        }
        var listener = ListenerConfig(name: name, address: try m.required("address").hostPort(), routes: routes,
                                      http2: try decodeHTTP2(m["http2"]))
        listener.maxDeadline = try m["max_deadline"]?.duration(min: .milliseconds(1), max: .seconds(86_400 * 30))
        listener.deadlineHeader = try m["deadline_header"]?.bool() ?? false
        if let v = m["max_connections"] { listener.maxConnections = try v.int(in: 1...1_000_000) }
        if let v = m["handshake_timeout"] { listener.handshakeTimeout = try v.duration(min: .milliseconds(10), max: .seconds(3600)) }
        if let v = m["idle_timeout"] {
            listener.idleTimeout = (try? v.string()) == "false" ? nil : try v.duration(min: .milliseconds(10), max: .seconds(86_400 * 30))
        }
        listener.tls = try m["tls"].map { try decodeListenerTLS($0, configDirectory: configDirectory) }
        listener.authorization = try m["authorization"].map { try decodeAuthorization($0, name: "listeners.\(name).authorization") }
        if listener.tls?.clientCA == nil {
            // Identities come from verified client certificates only.
            let written = [m["authorization"]] + routeValues.map { (try? $0.mapping(allowed: routeKeys))?["authorization"] }
            for value in written.compactMap({ $0 }) {
                guard let allow = (try? value.mapping(allowed: ["allow", "allow_unauthenticated"]))?["allow"],
                      let items = try? allow.sequence(), !items.isEmpty else { continue }
                throw allow.error("no caller of this listener can have an identity: it needs tls with client_ca (client certificates)")
            }
        }
        return listener
    }

    static func serviceReference(_ value: YAMLValue, services: [ServiceConfig]) throws -> String {
        let service = try value.string()
        guard services.contains(where: { $0.name == service }) else {
            let known = services.map { "\"\($0.name)\"" }.joined(separator: ", ")
            throw value.error("no service named \"\(service)\" (services: \(known))")
        }
        return service
    }

    private static let routeKeys = ["match", "service", "split", "authorization", "fault"]

    /// `{ match: { authority, method | path_prefix, headers }, service | split }`; an absent match
    /// takes everything.
    private static func decodeRoute(_ value: YAMLValue, services: [ServiceConfig], policyName: String) throws -> RouteConfig {
        let m = try value.mapping(allowed: routeKeys)
        var match = RouteMatch()
        if let matchValue = m["match"] {
            let mm = try matchValue.mapping(allowed: ["authority", "method", "path_prefix", "headers"])
            if let v = mm["authority"] {
                switch AuthorityPattern.parse(try v.string()) {
                case .success(let pattern): match.authority = pattern
                case .failure(let why): throw v.error(why.description)
                }
            }
            if let method = mm["method"], let prefix = mm["path_prefix"] {
                throw prefix.error("a route matches a gRPC \"method\" or a \"path_prefix\", not both (method is at line \(method.node.line))")
            }
            if let v = mm["method"] { match.path = try methodPattern(v) }
            if let v = mm["path_prefix"] {
                let prefix = try v.string()
                guard prefix.hasPrefix("/") else { throw v.error("a path prefix starts with '/', got \"\(prefix)\"") }
                match.path = .prefix(prefix)
            }
            if let v = mm["headers"] { match.headers = try decodeHeaderMatches(v) }
        }
        var route: RouteConfig
        switch (m["service"], m["split"]) {
        case (.some(let service), .none):
            route = RouteConfig(match: match, service: try serviceReference(service, services: services))
        case (.none, .some(let split)):
            route = RouteConfig(match: match, split: try decodeSplit(split, services: services))
        case (.some, .some(let split)):
            throw split.error("a route has \"service\" (one) or \"split\" (several by weight), not both")
        case (.none, .none):
            throw value.error("a route needs \"service\" (where its calls go) or \"split\" (services by weight)")
        }
        route.authorization = try m["authorization"].map { try decodeAuthorization($0, name: policyName) }
        route.fault = try m["fault"].map(decodeFault)
        return route
    }

    private static func methodPattern(_ value: YAMLValue) throws -> PathPattern {
        switch PathPattern.parseMethod(try value.string()) {
        case .success(let pattern): return pattern
        case .failure(let why): throw value.error(why.description)
        }
    }

    /// What to do about libyaml's commonest complaints, in words a config's author knows.
    static func syntaxHint(_ problem: String) -> String {
        if problem.contains("alias") || problem.contains("anchor") {
            return " (a value starting with * or & is read as a YAML alias or anchor: quote it, such as \"*:8440\")"
        }
        if problem.contains("cannot start any token") {
            return " (a value starting with @, ` or % must be quoted)"
        }
        if problem.contains("tab") {
            return " (indent with spaces; YAML does not allow tabs there)"
        }
        if problem.contains("mapping values are not allowed") {
            return " (a value holding \": \" must be quoted, or a key is indented too far)"
        }
        return ""
    }

    private static let policyKeys = ["timeout", "deadline_offset", "max_message_size", "stream_idle_timeout", "deadline_header",
                                     "failure_statuses", "retry", "hedge", "rate_limit", "fault"]

    /// Reads the policy keys present in `m` over `base` (what the entry inherits).
    private static func decodePolicy(_ m: YAMLMapping, over base: CallPolicy, origin: String) throws -> CallPolicy {
        var policy = base
        policy.origin = origin
        if let v = m["timeout"] { policy.timeout = try v.duration(min: .milliseconds(1), max: .seconds(86_400 * 30)) }
        if let v = m["deadline_offset"] { policy.deadlineOffset = try v.duration(max: .seconds(60)) }
        if let v = m["max_message_size"] { policy.maxMessageSize = try v.size(in: 1024...Int(Int32.max)) }
        if let v = m["stream_idle_timeout"] { policy.streamIdleTimeout = try v.duration(min: .milliseconds(1), max: .seconds(86_400 * 30)) }
        if let v = m["deadline_header"] { policy.deadlineHeader = try v.bool() }
        if let v = m["failure_statuses"] { policy.failureStatuses = Set(try statusList(v)) }
        if let v = m["retry"] { policy.retry = try decodeRetry(v, over: policy.retry) }
        if let v = m["hedge"] { policy.hedge = try decodeHedge(v) }
        policy.rateLimit = try m["rate_limit"].map(decodeRateLimit)
        policy.sources["rate_limit"] = nil        // never inherited
        if let v = m["fault"] { policy.fault = try decodeFault(v) }
        for key in policyKeys where m[key] != nil { policy.sources[key] = origin }
        return policy
    }

    private static func decodeService(name: String, _ value: YAMLValue, configDirectory: String) throws -> ServiceConfig {
        let m = try value.mapping(allowed: ["endpoints", "discovery", "connect_timeout", "idle_timeout",
                                            "max_connections_per_endpoint", "max_pending_calls", "http2", "methods",
                                            "keepalive", "balancer", "failure_accrual", "max_concurrent_calls",
                                            "allow_no_endpoints", "retry_budget", "tls", "health_check", "slow_start"] + policyKeys)
        let discovery: DiscoveryConfig
        switch (m["endpoints"], m["discovery"]) {
        case (let endpointsValue?, nil):
            discovery = .static(try decodeEndpointList(endpointsValue, allowEmpty: false))
        case (nil, let discoveryValue?):
            discovery = try decodeDiscovery(discoveryValue, configDirectory: configDirectory)
        case (_?, let discoveryValue?):
            throw discoveryValue.error("a service has either \"endpoints\" (a fixed list) or \"discovery\", not both")
        case (nil, nil):
            throw value.error("a service needs \"endpoints\" or \"discovery\"")
        }
        var service = ServiceConfig(name: name, discovery: discovery)
        service.pool.http2 = try decodeHTTP2(m["http2"])
        if let v = m["connect_timeout"] { service.pool.connectTimeout = try v.duration(min: .milliseconds(1), max: .seconds(600)) }
        if let v = m["idle_timeout"] { service.pool.idleTimeout = try v.duration(min: .milliseconds(1), max: .seconds(86_400)) }
        if let v = m["max_connections_per_endpoint"] { service.pool.maxConnectionsPerEndpoint = try v.int(in: 1...1024) }
        if let v = m["max_pending_calls"] {
            // 0 would let no call wait for a connection, and a connection is opened only for a
            // waiting call: the endpoint would never be reached.
            guard (try? v.int(in: 0...0)) == nil else {
                throw v.error("0 would leave every endpoint unreachable (calls wait for a connection to be made); write at least 1, or remove it for the default 1024")
            }
            service.pool.maxPendingCalls = try v.int(in: 1...1_000_000)
        }
        if let v = m["keepalive"] {
            let k = try v.mapping(allowed: ["interval", "timeout"])
            if let i = k["interval"] { service.pool.keepaliveInterval = try i.duration(min: .milliseconds(10), max: .seconds(86_400)) }
            if let t = k["timeout"] { service.pool.keepaliveTimeout = try t.duration(min: .milliseconds(10), max: .seconds(3600)) }
        }
        if let v = m["balancer"] { service.balancer = try decodeBalancer(v) }
        if let v = m["failure_accrual"] { service.failureAccrual = try decodeAccrual(v) }
        service.maxConcurrentCalls = try m["max_concurrent_calls"]?.int(in: 1...10_000_000)
        service.allowNoEndpoints = try m["allow_no_endpoints"]?.bool() ?? false
        if let v = m["retry_budget"] {
            let b = try v.mapping(allowed: ["ttl", "min_retries_per_second", "retry_percent"])
            if let t = b["ttl"] { service.retryBudget.ttl = try t.duration(min: .seconds(1), max: .seconds(3600)) }
            if let n = b["min_retries_per_second"] { service.retryBudget.minRetriesPerSecond = try n.int(in: 0...1_000_000) }
            if let p = b["retry_percent"] { service.retryBudget.retryPercent = Double(try p.int(in: 0...1000)) / 100 }
        }
        service.policy = try decodePolicy(m, over: service.policy, origin: "services.\(name)")
        if let methodsValue = m["methods"] { service.methods = try decodeMethods(methodsValue, service: service) }
        service.tls = try m["tls"].map { try decodeUpstreamTLS($0, configDirectory: configDirectory) }
        service.healthCheck = try m["health_check"].map(decodeHealthCheck)
        service.slowStart = try m["slow_start"].map(decodeSlowStart)
        return service
    }

    /// `methods` entries; an exact method inherits from its service's `pkg.Service/*` entry if
    /// there is one, which inherits from the service.
    private static func decodeMethods(_ value: YAMLValue, service: ServiceConfig) throws -> [MethodConfig] {
        let items = try value.sequence()
        var parsed: [(PathPattern, YAMLMapping, YAMLValue)] = []
        for item in items {
            let m = try item.mapping(allowed: ["match"] + policyKeys)
            let matchValue = try m.required("match")
            let pattern = try methodPattern(matchValue)
            if let earlier = parsed.first(where: { $0.0 == pattern }) {
                throw matchValue.error("\(pattern) is already matched by \(earlier.2.path)")
            }
            parsed.append((pattern, m, item))
        }
        var wholeServices: [String: CallPolicy] = [:]
        var methods: [MethodConfig] = []
        for (pattern, m, item) in parsed {
            guard case .grpcService(let name) = pattern else { continue }
            let policy = try decodePolicy(m, over: service.policy, origin: item.path)
            wholeServices[name] = policy
            methods.append(MethodConfig(match: pattern, policy: policy))
        }
        for (pattern, m, item) in parsed {
            guard case .grpcMethod(let name, _) = pattern else { continue }
            let base = wholeServices[name] ?? service.policy
            methods.append(MethodConfig(match: pattern, policy: try decodePolicy(m, over: base, origin: item.path)))
        }
        return methods
    }

    private static func decodeDiscovery(_ value: YAMLValue, configDirectory: String) throws -> DiscoveryConfig {
        let m = try value.mapping(allowed: ["file", "dns"])
        switch (m["file"], m["dns"]) {
        case (let fileValue?, nil):
            if case .scalar = fileValue.node.content {
                return .file(FileDiscoveryConfig(path: resolve(try fileValue.string(), against: configDirectory)))
            }
            let fm = try fileValue.mapping(allowed: ["path", "interval"])
            var file = FileDiscoveryConfig(path: resolve(try fm.required("path").string(), against: configDirectory))
            if let v = fm["interval"] { file.interval = try v.duration(min: .milliseconds(10), max: .seconds(3600)) }
            return .file(file)
        case (nil, let dnsValue?):
            return .dns(try decodeDNS(dnsValue))
        case (_?, let dnsValue?):
            throw dnsValue.error("one discovery source per service: \"file\" or \"dns\"")
        case (nil, nil):
            throw value.error("discovery needs \"file\" or \"dns\"")
        }
    }

    private static func decodeDNS(_ value: YAMLValue) throws -> DNSDiscoveryConfig {
        let m = try value.mapping(allowed: ["name", "record", "port", "resolver", "min_ttl", "max_ttl", "query_timeout"])
        let nameValue = try m.required("name")
        let name = try nameValue.string()
        guard DNSName.isValid(name) else { throw nameValue.error("not a valid DNS name: \"\(name)\"") }
        var dns = DNSDiscoveryConfig(name: name)
        if let v = m["record"] {
            let text = try v.string()
            guard let type = DNSDiscoveryConfig.RecordType(rawValue: text.uppercased()) else {
                throw v.error("record must be one of \(DNSDiscoveryConfig.RecordType.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
            }
            dns.recordType = type
        }
        dns.port = try m["port"]?.int(in: 1...65535)
        if dns.recordType != .srv && dns.port == nil {
            throw value.error("missing required key \"port\" (A and AAAA records carry no port)")
        }
        if dns.recordType == .srv, let port = m["port"] { throw port.error("SRV records carry their own ports; remove \"port\"") }
        dns.resolver = try m["resolver"]?.hostPort()
        if let v = m["min_ttl"] { dns.minTTL = try v.duration(min: .milliseconds(100), max: .seconds(86_400)) }
        if let v = m["max_ttl"] { dns.maxTTL = try v.duration(min: .milliseconds(100), max: .seconds(86_400)) }
        if dns.minTTL > dns.maxTTL { throw (m["min_ttl"] ?? value).error("min_ttl (\(dns.minTTL)) is above max_ttl (\(dns.maxTTL))") }
        if let v = m["query_timeout"] { dns.queryTimeout = try v.duration(min: .milliseconds(10), max: .seconds(60)) }
        return dns
    }

    /// `p2c-peak-ewma`, or `{ kind: p2c-peak-ewma, initial_rtt: 30ms, decay: 10s }`.
    private static func decodeBalancer(_ value: YAMLValue) throws -> BalancerConfig {
        var balancer = BalancerConfig()
        let kindValue: YAMLValue
        if case .scalar = value.node.content {
            kindValue = value
        } else {
            let m = try value.mapping(allowed: ["kind", "initial_rtt", "decay"])
            kindValue = try m.required("kind")
            if let v = m["initial_rtt"] { balancer.initialRTT = try v.duration(min: .microseconds(1), max: .seconds(60)) }
            if let v = m["decay"] { balancer.decay = try v.duration(min: .milliseconds(1), max: .seconds(3600)) }
        }
        let name = try kindValue.string()
        guard let kind = BalancerKind(rawValue: name) else {
            throw kindValue.error("balancer must be one of \(BalancerKind.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
        }
        balancer.kind = kind
        return balancer
    }

    private static func decodeAccrual(_ value: YAMLValue) throws -> FailureAccrualConfig {
        let m = try value.mapping(allowed: ["consecutive_failures", "min_backoff", "max_backoff", "max_ejected_percent",
                                            "count_deadline_exceeded", "count_per_try_timeout", "count_cancelled", "success_rate"])
        var accrual = FailureAccrualConfig()
        if let v = m["consecutive_failures"] { accrual.consecutiveFailures = try v.int(in: 0...10_000) }
        if let v = m["min_backoff"] { accrual.minBackoff = try v.duration(min: .milliseconds(1), max: .seconds(3600)) }
        if let v = m["max_backoff"] { accrual.maxBackoff = try v.duration(min: .milliseconds(1), max: .seconds(86_400)) }
        if accrual.minBackoff > accrual.maxBackoff {
            throw (m["min_backoff"] ?? value).error("min_backoff (\(accrual.minBackoff)) is above max_backoff (\(accrual.maxBackoff))")
        }
        if let v = m["max_ejected_percent"] { accrual.maxEjectedPercent = try v.int(in: 0...100) }
        if let v = m["count_deadline_exceeded"] { accrual.countDeadlineExceeded = try v.bool() }
        if let v = m["count_per_try_timeout"] { accrual.countPerTryTimeout = try v.bool() }
        if let v = m["count_cancelled"] { accrual.countCancelled = try v.bool() }
        if let v = m["success_rate"] { accrual.successRate = try decodeSuccessRate(v) }
        return accrual
    }

    /// `hedge: false`, `hedge: {delay: 50ms | p95, max_attempts: 2}`.
    private static func decodeHedge(_ value: YAMLValue) throws -> HedgePolicy? {
        if case .scalar = value.node.content { return try value.bool() ? HedgePolicy() : nil }
        let m = try value.mapping(allowed: ["delay", "max_attempts"])
        var hedge = HedgePolicy()
        if let v = m["delay"] {
            hedge.delay = try v.string() == "p95" ? .p95 : .fixed(try v.duration(min: .milliseconds(1), max: .seconds(60)))
        }
        if let v = m["max_attempts"] { hedge.maxAttempts = try v.int(in: 2...5) }
        return hedge
    }

    private static func decodeRetry(_ value: YAMLValue, over base: RetryPolicy) throws -> RetryPolicy {
        var retry = base
        if case .scalar = value.node.content {
            guard try !value.bool() else { return retry }
            retry.maxAttempts = 1
            return retry
        }
        let m = try value.mapping(allowed: ["on", "max_attempts", "per_try_timeout", "backoff", "buffer", "hold_response"])
        if let v = m["on"] { retry.on = Set(try statusList(v)) }
        if let v = m["max_attempts"] { retry.maxAttempts = try v.int(in: 1...5) }
        if let v = m["per_try_timeout"] { retry.perTryTimeout = try v.duration(min: .milliseconds(1), max: .seconds(3600)) }
        if let v = m["backoff"] {
            let b = try v.mapping(allowed: ["base", "max"])
            if let base = b["base"] { retry.backoffBase = try base.duration(min: .milliseconds(1), max: .seconds(60)) }
            if let max = b["max"] { retry.backoffMax = try max.duration(min: .milliseconds(1), max: .seconds(600)) }
            if retry.backoffBase > retry.backoffMax { throw (b["base"] ?? v).error("base (\(retry.backoffBase)) is above max (\(retry.backoffMax))") }
        }
        if let v = m["buffer"] { retry.bufferSize = try v.size(in: 0...(64 << 20)) }
        if let v = m["hold_response"] { retry.holdResponse = try v.size(in: 0...(16 << 20)) }
        return retry
    }

    /// A list of gRPC status names (`UNAVAILABLE`) or numbers.
    static func statusList(_ value: YAMLValue) throws -> [GRPCStatusCode] {
        try value.sequence().map(status)
    }

    /// A gRPC status name (`UNAVAILABLE`, any case) or number.
    static func status(_ item: YAMLValue) throws -> GRPCStatusCode {
        let text = try item.string()
        if let n = Int(text), let code = GRPCStatusCode(rawValue: n) { return code }
        if let code = GRPCStatusCode.allCases.first(where: { $0.name == text.uppercased() }) { return code }
        throw item.error("not a gRPC status: \"\(text)\" (use names like UNAVAILABLE or numbers 0..16)")
    }

    static func resolve(_ path: String, against directory: String) -> String {
        path.hasPrefix("/") || directory.isEmpty ? path : directory + "/" + path
    }

    static func decodeEndpointList(_ value: YAMLValue, allowEmpty: Bool) throws -> [EndpointConfig] {
        var endpoints: [EndpointConfig] = []
        for item in try value.sequence() {
            let endpoint = try decodeEndpoint(item)
            if endpoints.contains(where: { $0.address == endpoint.address }) {
                throw item.error("endpoint \(endpoint.address) is listed twice")
            }
            endpoints.append(endpoint)
        }
        guard allowEmpty || !endpoints.isEmpty else { throw value.error("a service needs at least one endpoint") }
        return endpoints
    }

    /// An endpoint is `host:port`, or a mapping `{ address: host:port, weight: N }`.
    private static func decodeEndpoint(_ value: YAMLValue) throws -> EndpointConfig {
        if case .scalar = value.node.content {
            return EndpointConfig(address: try value.hostPort(), weight: 1)
        }
        let m = try value.mapping(allowed: ["address", "weight"])
        return EndpointConfig(address: try m.required("address").hostPort(),
                              weight: try m["weight"]?.int(in: 1...10_000) ?? 1)
    }
}

/// DNS name syntax: dot-separated labels of letters, digits, '-' and '_' (SRV names), each
/// 1..63 bytes, 253 bytes in all; one trailing dot allowed.
public enum DNSName {
    public static func isValid(_ name: String) -> Bool {
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { return false }
        return trimmed.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count)
                && label.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "_" }
        }
    }
}
