/// Everything one event loop counts, touched only on that loop. A scrape submits to each loop
/// for a `Snapshot` and sums them: nothing on the request path is shared or locked.
final class LoopMetrics {
    private var routes: [String: RouteMetrics] = [:]
    /// Requests no route matched, by listener.
    private(set) var noRoute: [String: Int] = [:]
    /// Downstream connections ended by a protocol error, by listener and kind.
    private(set) var protocolErrors: [String: [String: Int]] = [:]
    /// Downstream connections the proxy closed or refused for a limit, by listener and reason
    /// (handshake_timeout, idle_timeout, connection_limit).
    private(set) var connectionsClosed: [String: [String: Int]] = [:]

    /// The metrics of calls `listener` routes to `service` (made on first use, kept across reloads).
    func route(listener: String, service: String) -> RouteMetrics {
        let key = listener + "\u{0}" + service
        if let existing = routes[key] { return existing }
        let made = RouteMetrics(listener: listener, service: service)
        routes[key] = made
        return made
    }

    func countNoRoute(listener: String) {
        noRoute[listener, default: 0] += 1
    }

    func countProtocolError(listener: String, kind: String) {
        protocolErrors[listener, default: [:]][kind, default: 0] += 1
    }

    func countConnectionClosed(listener: String, reason: String) {
        connectionsClosed[listener, default: [:]][reason, default: 0] += 1
    }

    struct Snapshot: Sendable {
        var routes: [RouteMetrics.Snapshot]
        var noRoute: [String: Int]
        var protocolErrors: [String: [String: Int]]
        var connectionsClosed: [String: [String: Int]]
    }

    var snapshot: Snapshot {
        Snapshot(routes: routes.values.map(\.snapshot), noRoute: noRoute, protocolErrors: protocolErrors,
                 connectionsClosed: connectionsClosed)
    }

}
