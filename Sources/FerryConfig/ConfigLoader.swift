import Foundation
import Yams

/// Reads and validates Ferry's YAML configuration. Every error is a `ConfigError` naming the
/// file, line, column and key.
public enum ConfigLoader {
    public static func load(path: String) throws -> FerryConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, line: 0, column: 0, key: "", message: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse(yaml: text, source: path)
    }

    public static func parse(yaml: String, source: String) throws -> FerryConfig {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigError(file: source, line: 0, column: 0, key: "", message: "the file is empty")
            }
            root = node
        } catch let error as YamlError {
            throw yamlSyntaxError(error, source: source)
        }
        return try decode(YAMLValue(node: root, path: "", file: source), source: source)
    }

    private static func yamlSyntaxError(_ error: YamlError, source: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return ConfigError(file: source, line: mark.line, column: mark.column, key: "", message: "YAML syntax: \(problem)")
        default:
            return ConfigError(file: source, line: 0, column: 0, key: "", message: "YAML: \(error)")
        }
    }

    private static func decode(_ root: YAMLValue, source: String) throws -> FerryConfig {
        let top = try root.mapping(allowed: ["admin", "runtime", "listeners", "services"])
        let admin = try top["admin"].map(decodeAdmin)
        let runtime = try top["runtime"].map(decodeRuntime) ?? RuntimeConfig()

        let servicesValue = try top.required("services")
        var services: [ServiceConfig] = []
        for (name, value) in try servicesValue.mapping(allowed: [String](Self.anyKey(servicesValue))).entries {
            guard isValidName(name) else { throw value.error("service names use letters, digits, '-', '_' and '.'") }
            services.append(try decodeService(name: name, value))
        }
        guard !services.isEmpty else { throw servicesValue.error("at least one service is required") }

        let listenersValue = try top.required("listeners")
        var listeners: [ListenerConfig] = []
        for item in try listenersValue.sequence() {
            let listener = try decodeListener(item, services: services)
            if listeners.contains(where: { $0.name == listener.name }) {
                throw item.error("a listener named \"\(listener.name)\" is already defined")
            }
            if listeners.contains(where: { $0.address == listener.address }) {
                throw item.error("another listener already uses \(listener.address)")
            }
            listeners.append(listener)
        }
        guard !listeners.isEmpty else { throw listenersValue.error("at least one listener is required") }
        if let admin, listeners.contains(where: { $0.address == admin.address }) {
            throw (top["admin"] ?? root).error("the admin address \(admin.address) is also a data listener's address")
        }
        return FerryConfig(admin: admin, runtime: runtime, listeners: listeners, services: services, source: source)
    }

    /// Every key of a mapping (for mappings whose keys are names, not fields).
    private static func anyKey(_ value: YAMLValue) -> [String] {
        guard case .mapping(let mapping) = value.node else { return [] }
        return mapping.compactMap { if case .scalar(let s) = $0.key { return s.string } else { return nil } }
    }

    private static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
    }

    private static func decodeAdmin(_ value: YAMLValue) throws -> AdminConfig {
        let m = try value.mapping(allowed: ["address"])
        return AdminConfig(address: try m.required("address").hostPort())
    }

    private static func decodeRuntime(_ value: YAMLValue) throws -> RuntimeConfig {
        let m = try value.mapping(allowed: ["event_loops", "drain_timeout"])
        var runtime = RuntimeConfig()
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

    private static func decodeListener(_ value: YAMLValue, services: [ServiceConfig]) throws -> ListenerConfig {
        let m = try value.mapping(allowed: ["name", "address", "service", "max_deadline", "http2"])
        let nameValue = try m.required("name")
        let name = try nameValue.string()
        guard isValidName(name) else { throw nameValue.error("listener names use letters, digits, '-', '_' and '.'") }
        let serviceValue = try m.required("service")
        let service = try serviceValue.string()
        guard services.contains(where: { $0.name == service }) else {
            let known = services.map { "\"\($0.name)\"" }.joined(separator: ", ")
            throw serviceValue.error("no service named \"\(service)\" (services: \(known))")
        }
        var listener = ListenerConfig(name: name, address: try m.required("address").hostPort(), service: service,
                                      http2: try decodeHTTP2(m["http2"]))
        listener.maxDeadline = try m["max_deadline"]?.duration(min: .milliseconds(1), max: .seconds(86_400 * 30))
        return listener
    }

    private static func decodeService(name: String, _ value: YAMLValue) throws -> ServiceConfig {
        let m = try value.mapping(allowed: ["endpoints", "connect_timeout", "idle_timeout",
                                            "max_connections_per_endpoint", "max_pending_calls", "max_message_size",
                                            "timeout", "deadline_offset", "http2"])
        let endpointsValue = try m.required("endpoints")
        var endpoints: [EndpointConfig] = []
        for item in try endpointsValue.sequence() {
            let endpoint = try decodeEndpoint(item)
            if endpoints.contains(where: { $0.address == endpoint.address }) {
                throw item.error("endpoint \(endpoint.address) is listed twice")
            }
            endpoints.append(endpoint)
        }
        guard !endpoints.isEmpty else { throw endpointsValue.error("a service needs at least one endpoint") }
        var service = ServiceConfig(name: name, endpoints: endpoints, http2: try decodeHTTP2(m["http2"]))
        if let v = m["connect_timeout"] { service.connectTimeout = try v.duration(min: .milliseconds(1), max: .seconds(600)) }
        if let v = m["idle_timeout"] { service.idleTimeout = try v.duration(min: .milliseconds(1), max: .seconds(86_400)) }
        if let v = m["max_connections_per_endpoint"] { service.maxConnectionsPerEndpoint = try v.int(in: 1...1024) }
        if let v = m["max_pending_calls"] { service.maxPendingCalls = try v.int(in: 0...1_000_000) }
        if let v = m["max_message_size"] { service.maxMessageSize = try v.size(in: 1024...Int(Int32.max)) }
        service.timeout = try m["timeout"]?.duration(min: .milliseconds(1), max: .seconds(86_400 * 30))
        if let v = m["deadline_offset"] { service.deadlineOffset = try v.duration(max: .seconds(60)) }
        return service
    }

    /// An endpoint is `host:port`, or a mapping `{ address: host:port, weight: N }`.
    private static func decodeEndpoint(_ value: YAMLValue) throws -> EndpointConfig {
        if case .scalar = value.node {
            return EndpointConfig(address: try value.hostPort(), weight: 1)
        }
        let m = try value.mapping(allowed: ["address", "weight"])
        return EndpointConfig(address: try m.required("address").hostPort(),
                              weight: try m["weight"]?.int(in: 1...10_000) ?? 1)
    }
}
