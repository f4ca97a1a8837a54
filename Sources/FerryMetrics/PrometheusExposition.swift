import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy

/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` once
/// per family, then its samples; label values escaped.
package struct PrometheusWriter {
    package private(set) var text = ""

    package init() {}

    package mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    package mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    package mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Int) {
        sample(name, labels, Double(value))
    }

    package mutating func histogram(_ name: String, _ labels: [(String, String)], _ h: LatencyHistogram) {
        let cumulative = h.cumulative
        for (i, bound) in LatencyHistogram.bounds.enumerated() {
            sample(name + "_bucket", labels + [("le", Self.format(Double(bound) / 1e9))], cumulative[i])
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], cumulative.last ?? 0)
        sample(name + "_sum", labels, Double(h.sumNanoseconds) / 1e9)
        sample(name + "_count", labels, h.count)
    }

    package static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    package static func format(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}

/// Ferry's metrics, summed over the event loops' snapshots.
package enum MetricsExposition {
    package struct Inputs {
        package var loops: [(LoopMetrics.Snapshot, LoopGauges)]
        /// Each service's endpoints and their accrual state.
        package var health: [String: [(HostPort, FailureAccrual.State)]]
        package var now: Int64
        /// The certificates in use (who presents it, its file, its leaf's expiry in Unix
        /// seconds) and the wall clock to count down from.
        package var certificates: [(owner: String, file: String, notAfter: Int)]
        package var wallClockSeconds: Int
        /// Each checked endpoint's health-check verdict and counts.
        package var healthChecks: [String: [(HostPort, HealthCheckState.Status, passed: Int, failed: Int)]] = [:]
        /// Each service's ejections of serving endpoints, by why.
        package var ejections: [String: (consecutiveFailures: Int, successRate: Int)] = [:]
        /// The build's version (`ferry_build_info`) and the process's figures.
        /// Reloads applied and refused, and when the running configuration was applied (Unix seconds).
        package var reloads: (ok: Int, rejected: Int, lastSuccess: Int64) = (0, 0, 0)
        package var version = ""
        package var process: ProcessMetrics?
        /// The access log's lines written and dropped (nil: no access log has run).
        package var accessLog: (written: Int, dropped: Int, failedWrites: Int)?

        package init(loops: [(LoopMetrics.Snapshot, LoopGauges)], health: [String: [(HostPort, FailureAccrual.State)]], now: Int64,
                     certificates: [(owner: String, file: String, notAfter: Int)] = [], wallClockSeconds: Int = 0) {
            self.loops = loops
            self.health = health
            self.now = now
            self.certificates = certificates
            self.wallClockSeconds = wallClockSeconds
        }
    }

    /// One service's events added up over its routes and the loops.
    private struct ServiceTotals {
        var deadline = [0, 0, 0]
        var idle = 0, shed = 0, noEndpoints = 0, retries = 0, exhausted = 0, hedges = 0
        var rateLimited: [String: Int] = [:]
        var faults: [String: [String: Int]] = [:]     // kind -> origin -> count

        mutating func add(_ route: RouteMetrics.Snapshot) {
            hedges += route.hedges
            retries += route.retries
            exhausted += route.retryBudgetExhausted
            for i in 0..<3 { deadline[i] += route.deadlineExceeded[i] }
            idle += route.streamIdleTimeouts
            shed += route.loadShed
            noEndpoints += route.noEndpoints
            for (origin, n) in route.rateLimited { rateLimited[origin, default: 0] += n }
            for (origin, n) in route.faultAborts { faults["abort", default: [:]][origin, default: 0] += n }
            for (origin, n) in route.faultDelays { faults["delay", default: [:]][origin, default: 0] += n }
        }
    }

    package static func render(_ inputs: Inputs) -> String {
        var w = PrometheusWriter()
        w.family("ferry_build_info", "gauge", "1, labelled with the running build's version.")
        w.sample("ferry_build_info", [("version", inputs.version)], 1)
        inputs.process?.write(to: &w, version: inputs.version)
        w.family("ferry_config_reloads_total", "counter", "Configuration reloads, by result (ok: applied; rejected: the running one stayed).")
        w.sample("ferry_config_reloads_total", [("result", "ok")], inputs.reloads.ok)
        w.sample("ferry_config_reloads_total", [("result", "rejected")], inputs.reloads.rejected)
        w.family("ferry_config_last_reload_success_timestamp_seconds", "gauge", "When the running configuration was applied (at start or by a reload), in Unix seconds.")
        w.sample("ferry_config_last_reload_success_timestamp_seconds", [], Int(inputs.reloads.lastSuccess))
        if let log = inputs.accessLog {
            w.family("ferry_access_log_lines_total", "counter", "Access log lines, by result (dropped: the destination did not keep up or refused the write).")
            w.sample("ferry_access_log_lines_total", [("result", "written")], log.written)
            w.sample("ferry_access_log_lines_total", [("result", "dropped")], log.dropped)
            w.family("ferry_access_log_write_errors_total", "counter", "Writes the access log's destination refused (a full disk, a closed pipe).")
            w.sample("ferry_access_log_write_errors_total", [], log.failedWrites)
        }

        // Per listener, service and method: merge the loops.
        struct Key: Hashable { var listener, service, method: String }
        var methods: [Key: MethodMetrics.Snapshot] = [:]
        var services: [String: ServiceTotals] = [:]
        var noRoute: [String: Int] = [:]
        var protocolErrors: [String: [String: Int]] = [:]
        var connectionsClosed: [String: [String: Int]] = [:]
        var tlsFailures: [String: Int] = [:]
        var denied: [String: [String: Int]] = [:]
        var gauges = LoopGauges()
        struct EndpointKey: Hashable { var service, endpoint: String }
        var endpoints: [EndpointKey: (pending: Int, latency: Double, loops: Int, connections: Int, streams: Int, counts: EndpointCounts)] = [:]
        for (metrics, loopGauges) in inputs.loops {
            for route in metrics.routes {
                for (method, snapshot) in route.methods where snapshot.requests > 0 {
                    methods[Key(listener: route.listener, service: route.service, method: method), default: .init()].add(snapshot)
                }
                services[route.service, default: ServiceTotals()].add(route)
            }
            for (listener, n) in metrics.noRoute { noRoute[listener, default: 0] += n }
            for (listener, kinds) in metrics.protocolErrors {
                for (kind, n) in kinds { protocolErrors[listener, default: [:]][kind, default: 0] += n }
            }
            for (listener, reasons) in metrics.connectionsClosed {
                for (reason, n) in reasons { connectionsClosed[listener, default: [:]][reason, default: 0] += n }
            }
            for (listener, n) in metrics.tlsHandshakeFailures { tlsFailures[listener, default: 0] += n }
            for (listener, policies) in metrics.authorizationDenied {
                for (policy, n) in policies { denied[listener, default: [:]][policy, default: 0] += n }
            }
            for (listener, n) in loopGauges.connections { gauges.connections[listener, default: 0] += n }
            for (listener, n) in loopGauges.streams { gauges.streams[listener, default: 0] += n }
            for e in loopGauges.endpoints {
                var v = endpoints[EndpointKey(service: e.service, endpoint: e.endpoint)] ?? (0, 0, 0, 0, 0, EndpointCounts())
                v.counts.add(e.counts)
                v.pending += e.pending
                v.latency += e.latencyNanoseconds
                v.loops += 1
                v.connections += e.connections
                v.streams += e.streams
                endpoints[EndpointKey(service: e.service, endpoint: e.endpoint)] = v
            }
        }
        let sortedMethods = methods.sorted { ($0.key.listener, $0.key.service, $0.key.method) < ($1.key.listener, $1.key.service, $1.key.method) }
        func labels(_ k: Key) -> [(String, String)] { [("listener", k.listener), ("service", k.service), ("method", k.method)] }

        w.family("ferry_requests_total", "counter", "Requests routed, by listener, service and gRPC method (other: non-gRPC paths and methods past the label cap).")
        for (k, m) in sortedMethods { w.sample("ferry_requests_total", labels(k), m.requests) }
        w.family("ferry_grpc_responses_total", "counter", "gRPC calls ended, by final grpc-status (CANCELLED when the caller went away).")
        for (k, m) in sortedMethods {
            for (code, n) in m.grpcStatuses.enumerated() where n > 0 {
                w.sample("ferry_grpc_responses_total", labels(k) + [("grpc_status", GRPCStatusCode(rawValue: code)?.name ?? "\(code)")], n)
            }
            if m.grpcStatusOther > 0 { w.sample("ferry_grpc_responses_total", labels(k) + [("grpc_status", "none")], m.grpcStatusOther) }
        }
        w.family("ferry_http_responses_total", "counter", "Plain HTTP/2 requests ended, by response status (499: the caller went away).")
        for (k, m) in sortedMethods {
            for (status, n) in m.httpStatuses.sorted(by: { $0.key < $1.key }) {
                w.sample("ferry_http_responses_total", labels(k) + [("http_status", String(status))], n)
            }
        }
        w.family("ferry_response_headers_seconds", "histogram", "Time from a request's arrival to its response headers.")
        for (k, m) in sortedMethods { w.histogram("ferry_response_headers_seconds", labels(k), m.timeToHeaders) }
        w.family("ferry_request_duration_seconds", "histogram", "Time from a request's arrival to the end of its response.")
        for (k, m) in sortedMethods { w.histogram("ferry_request_duration_seconds", labels(k), m.duration) }
        w.family("ferry_request_bytes_total", "counter", "Request body bytes received from callers.")
        for (k, m) in sortedMethods { w.sample("ferry_request_bytes_total", labels(k), m.requestBytes) }
        w.family("ferry_response_bytes_total", "counter", "Response body bytes received from upstreams.")
        for (k, m) in sortedMethods { w.sample("ferry_response_bytes_total", labels(k), m.responseBytes) }

        let sortedServices = services.sorted { $0.key < $1.key }
        w.family("ferry_deadline_exceeded_total", "counter", "Calls Ferry ended at their deadline, by the deadline's source.")
        for (service, s) in sortedServices {
            for (i, source) in ["caller", "method", "listener"].enumerated() {
                w.sample("ferry_deadline_exceeded_total", [("service", service), ("source", source)], s.deadline[i])
            }
        }
        w.family("ferry_stream_idle_timeouts_total", "counter", "Calls ended by stream_idle_timeout.")
        for (service, s) in sortedServices { w.sample("ferry_stream_idle_timeouts_total", [("service", service)], s.idle) }
        w.family("ferry_load_shed_total", "counter", "Calls refused over max_concurrent_calls.")
        for (service, s) in sortedServices { w.sample("ferry_load_shed_total", [("service", service)], s.shed) }
        w.family("ferry_rate_limited_total", "counter", "Calls refused by a rate limit, by where the limit is written.")
        for (service, s) in sortedServices {
            for (origin, n) in s.rateLimited.sorted(by: { $0.key < $1.key }) {
                w.sample("ferry_rate_limited_total", [("service", service), ("limit", origin)], n)
            }
        }
        w.family("ferry_faults_injected_total", "counter", "Faults injected into calls (abort: answered with the fault's status; delay: held before going upstream), by where the fault is written.")
        for (service, s) in sortedServices {
            for (kind, origins) in s.faults.sorted(by: { $0.key < $1.key }) {
                for (origin, n) in origins.sorted(by: { $0.key < $1.key }) {
                    w.sample("ferry_faults_injected_total", [("service", service), ("kind", kind), ("fault", origin)], n)
                }
            }
        }
        w.family("ferry_no_endpoints_total", "counter", "Calls failed because the service had no endpoints.")
        for (service, s) in sortedServices { w.sample("ferry_no_endpoints_total", [("service", service)], s.noEndpoints) }

        w.family("ferry_retries_total", "counter", "Attempts made again by retry policy (transparent retries not included).")
        for (service, s) in sortedServices { w.sample("ferry_retries_total", [("service", service)], s.retries) }
        w.family("ferry_retry_budget_exhausted_total", "counter", "Retries refused because the service's retry budget was spent.")
        for (service, s) in sortedServices { w.sample("ferry_retry_budget_exhausted_total", [("service", service)], s.exhausted) }

        w.family("ferry_hedges_total", "counter", "Hedged attempts sent (raced against a slow first attempt).")
        for (service, s) in sortedServices { w.sample("ferry_hedges_total", [("service", service)], s.hedges) }

        w.family("ferry_no_route_total", "counter", "Requests no route matched, by listener.")
        for (listener, n) in noRoute.sorted(by: { $0.key < $1.key }) { w.sample("ferry_no_route_total", [("listener", listener)], n) }
        w.family("ferry_protocol_errors_total", "counter", "Downstream connections ended by a protocol error, by listener and kind.")
        for (listener, kinds) in protocolErrors.sorted(by: { $0.key < $1.key }) {
            for (kind, n) in kinds.sorted(by: { $0.key < $1.key }) {
                w.sample("ferry_protocol_errors_total", [("listener", listener), ("kind", kind)], n)
            }
        }
        w.family("ferry_downstream_connections_closed_total", "counter",
                 "Downstream connections the proxy closed or refused for a limit, by listener and reason.")
        for (listener, reasons) in connectionsClosed.sorted(by: { $0.key < $1.key }) {
            for (reason, n) in reasons.sorted(by: { $0.key < $1.key }) {
                w.sample("ferry_downstream_connections_closed_total", [("listener", listener), ("reason", reason)], n)
            }
        }
        w.family("ferry_tls_handshake_failures_total", "counter",
                 "TLS handshakes on a listener that failed or did not negotiate h2, by listener.")
        for (listener, n) in tlsFailures.sorted(by: { $0.key < $1.key }) {
            w.sample("ferry_tls_handshake_failures_total", [("listener", listener)], n)
        }
        w.family("ferry_authorization_denied_total", "counter", "Calls an authorization policy denied (PERMISSION_DENIED), by listener and policy.")
        for (listener, policies) in denied.sorted(by: { $0.key < $1.key }) {
            for (policy, n) in policies.sorted(by: { $0.key < $1.key }) {
                w.sample("ferry_authorization_denied_total", [("listener", listener), ("policy", policy)], n)
            }
        }
        w.family("ferry_certificate_expiry_seconds", "gauge",
                 "Seconds until the certificate a listener or service presents expires (negative: expired), by owner and file.")
        for certificate in inputs.certificates.sorted(by: { ($0.owner, $0.file) < ($1.owner, $1.file) }) {
            w.sample("ferry_certificate_expiry_seconds", [("owner", certificate.owner), ("file", certificate.file)],
                     certificate.notAfter - inputs.wallClockSeconds)
        }
        w.family("ferry_downstream_connections", "gauge", "Open downstream connections, by listener.")
        for (listener, n) in gauges.connections.sorted(by: { $0.key < $1.key }) { w.sample("ferry_downstream_connections", [("listener", listener)], n) }
        w.family("ferry_downstream_streams", "gauge", "Open downstream streams, by listener.")
        for (listener, n) in gauges.streams.sorted(by: { $0.key < $1.key }) { w.sample("ferry_downstream_streams", [("listener", listener)], n) }
        w.family("ferry_h2_sessions", "gauge", "nghttp2 sessions created and not yet deleted (downstream and upstream connections, admin excluded).")
        w.sample("ferry_h2_sessions", [], H2Connection.liveSessions)
        w.family("ferry_h2_connection_objects", "gauge", "HTTP/2 connection objects not yet freed; above ferry_h2_sessions only while a closed connection is still held.")
        w.sample("ferry_h2_connection_objects", [], H2Connection.liveObjects)

        let sortedEndpoints = endpoints.sorted { ($0.key.service, $0.key.endpoint) < ($1.key.service, $1.key.endpoint) }
        func e(_ k: EndpointKey) -> [(String, String)] { [("service", k.service), ("endpoint", k.endpoint)] }
        w.family("ferry_endpoint_pending_calls", "gauge", "Calls sent to the endpoint and not finished (waiting or forwarding).")
        for (k, v) in sortedEndpoints { w.sample("ferry_endpoint_pending_calls", e(k), v.pending) }
        w.family("ferry_endpoint_latency_estimate_seconds", "gauge", "The balancer's PeakEWMA latency estimate (mean over event loops).")
        for (k, v) in sortedEndpoints { w.sample("ferry_endpoint_latency_estimate_seconds", e(k), v.latency / Double(max(1, v.loops)) / 1e9) }
        w.family("ferry_endpoint_connections", "gauge", "Open upstream connections to the endpoint.")
        for (k, v) in sortedEndpoints { w.sample("ferry_endpoint_connections", e(k), v.connections) }
        w.family("ferry_endpoint_streams", "gauge", "Open upstream streams to the endpoint.")
        for (k, v) in sortedEndpoints { w.sample("ferry_endpoint_streams", e(k), v.streams) }
        w.family("ferry_endpoint_requests_total", "counter", "Attempts sent to the endpoint (every try, retry and hedge).")
        for (k, v) in sortedEndpoints { w.sample("ferry_endpoint_requests_total", e(k), v.counts.requests) }
        w.family("ferry_endpoint_responses_total", "counter", "Responses from the endpoint, by gRPC status (grpc_status) or HTTP status class (http_status: 2xx..5xx); attempts cut before a status are not responses.")
        for (k, v) in sortedEndpoints {
            for (code, n) in v.counts.grpcStatuses.enumerated() where n > 0 {
                let name = code <= 16 ? (GRPCStatusCode(rawValue: code)?.name ?? String(code)) : "other"
                w.sample("ferry_endpoint_responses_total", e(k) + [("grpc_status", name)], n)
            }
            for (index, n) in v.counts.httpClasses.enumerated() where n > 0 {
                w.sample("ferry_endpoint_responses_total", e(k) + [("http_status", "\(index + 1)xx")], n)
            }
        }
        w.family("ferry_endpoint_response_latency_seconds", "histogram", "From an attempt's placement to the endpoint's response headers (waiting for a connection included).")
        for (k, v) in sortedEndpoints { w.histogram("ferry_endpoint_response_latency_seconds", e(k), v.counts.latency) }
        w.family("ferry_endpoint_connect_failures_total", "counter", "Connections to the endpoint that could not be made (refused, timed out, TLS handshake failed).")
        for (k, v) in sortedEndpoints { w.sample("ferry_endpoint_connect_failures_total", e(k), v.counts.connectFailures) }
        w.family("ferry_endpoint_state", "gauge", "1 for the endpoint's failure-accrual state (active, ejected, probing), 0 for the others.")
        for (service, states) in inputs.health.sorted(by: { $0.key < $1.key }) {
            for (address, state) in states.sorted(by: { $0.0.description < $1.0.description }) {
                let current = stateName(state)
                for name in ["active", "ejected", "probing"] {
                    w.sample("ferry_endpoint_state", [("service", service), ("endpoint", address.description), ("state", name)], name == current ? 1 : 0)
                }
            }
        }
        w.family("ferry_endpoint_ejections_total", "counter", "Endpoints taking calls that outlier detection ejected, by reason (a failed probe's re-ejection is not counted).")
        for (service, counts) in inputs.ejections.sorted(by: { $0.key < $1.key }) {
            w.sample("ferry_endpoint_ejections_total", [("service", service), ("reason", "consecutive_failures")], counts.consecutiveFailures)
            w.sample("ferry_endpoint_ejections_total", [("service", service), ("reason", "success_rate")], counts.successRate)
        }
        let checked = inputs.healthChecks.sorted(by: { $0.key < $1.key }).flatMap { service, list in
            list.sorted(by: { $0.0.description < $1.0.description }).map { (service, $0) }
        }
        w.family("ferry_endpoint_health_check_status", "gauge", "1 for the endpoint's active health-check verdict (unknown, healthy, unhealthy), 0 for the others.")
        for (service, c) in checked {
            let current = healthCheckName(c.1)
            for name in ["unknown", "healthy", "unhealthy"] {
                w.sample("ferry_endpoint_health_check_status", [("service", service), ("endpoint", c.0.description), ("status", name)], name == current ? 1 : 0)
            }
        }
        w.family("ferry_health_checks_total", "counter", "Active health checks made, by result.")
        for (service, c) in checked {
            w.sample("ferry_health_checks_total", [("service", service), ("endpoint", c.0.description), ("result", "passed")], c.passed)
            w.sample("ferry_health_checks_total", [("service", service), ("endpoint", c.0.description), ("result", "failed")], c.failed)
        }
        return w.text
    }

    package static func healthCheckName(_ status: HealthCheckState.Status) -> String {
        switch status {
        case .unknown: return "unknown"
        case .healthy: return "healthy"
        case .unhealthy: return "unhealthy"
        }
    }

    package static func stateName(_ state: FailureAccrual.State) -> String {
        switch state {
        case .active: return "active"
        case .ejected: return "ejected"
        case .probing: return "probing"
        }
    }
}
