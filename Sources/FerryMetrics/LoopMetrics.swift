/// Everything one event loop counts, touched only on that loop. A scrape submits to each loop
/// for a `Snapshot` and sums them: nothing on the request path is shared or locked.
package final class LoopMetrics {
    package init() {}

    private var routes: [String: RouteMetrics] = [:]
    /// Requests no route matched, by listener.
    package private(set) var noRoute: [String: Int] = [:]
    /// Downstream connections ended by a protocol error, by listener and kind.
    package private(set) var protocolErrors: [String: [String: Int]] = [:]
    /// Downstream connections the proxy closed or refused for a limit, by listener and reason
    /// (handshake_timeout, idle_timeout, connection_limit).
    package private(set) var connectionsClosed: [String: [String: Int]] = [:]
    /// TLS handshakes on a listener that failed (or did not negotiate h2), by listener.
    package private(set) var tlsHandshakeFailures: [String: Int] = [:]
    /// Calls an authorization policy denied, by listener and policy.
    package private(set) var authorizationDenied: [String: [String: Int]] = [:]

    /// The metrics of calls `listener` routes to `service` (made on first use, kept across reloads).
    package func route(listener: String, service: String) -> RouteMetrics {
        let key = listener + "\u{0}" + service
        if let existing = routes[key] { return existing }
        let made = RouteMetrics(listener: listener, service: service)
        routes[key] = made
        return made
    }

    package func countNoRoute(listener: String) {
        noRoute[listener, default: 0] += 1
    }

    package func countProtocolError(listener: String, kind: String) {
        protocolErrors[listener, default: [:]][kind, default: 0] += 1
    }

    package func countConnectionClosed(listener: String, reason: String) {
        connectionsClosed[listener, default: [:]][reason, default: 0] += 1
    }

    package func countTLSHandshakeFailure(listener: String) {
        tlsHandshakeFailures[listener, default: 0] += 1
    }

    package func countAuthorizationDenied(listener: String, policy: String) {
        authorizationDenied[listener, default: [:]][policy, default: 0] += 1
    }

    package struct Snapshot: Sendable {
        package var routes: [RouteMetrics.Snapshot]
        package var noRoute: [String: Int]
        package var protocolErrors: [String: [String: Int]]
        package var connectionsClosed: [String: [String: Int]]
        package var tlsHandshakeFailures: [String: Int]
        package var authorizationDenied: [String: [String: Int]]

        package init(routes: [RouteMetrics.Snapshot], noRoute: [String: Int], protocolErrors: [String: [String: Int]], connectionsClosed: [String: [String: Int]],
                     tlsHandshakeFailures: [String: Int] = [:], authorizationDenied: [String: [String: Int]] = [:]) {
            self.routes = routes
            self.noRoute = noRoute
            self.protocolErrors = protocolErrors
            self.connectionsClosed = connectionsClosed
            self.tlsHandshakeFailures = tlsHandshakeFailures
            self.authorizationDenied = authorizationDenied
        }
    }

    package var snapshot: Snapshot {
        Snapshot(routes: routes.values.map(\.snapshot), noRoute: noRoute, protocolErrors: protocolErrors,
                 connectionsClosed: connectionsClosed, tlsHandshakeFailures: tlsHandshakeFailures, authorizationDenied: authorizationDenied)
    }
}
