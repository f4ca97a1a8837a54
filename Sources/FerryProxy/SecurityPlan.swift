import FerryConfig
import FerryTLS
import FerryUpstream
import NIOSSL

/// The TLS material of one configuration, loaded from its files: each TLS listener's context
/// and each TLS service's client. Built on the control plane (at start, on reload and when a
/// certificate file changes) and handed to every loop; contexts are shared, not copied.
struct SecurityPlan: Sendable {
    var listenerContexts: [String: NIOSSLContext] = [:]
    var upstreamClients: [String: UpstreamTLSClient] = [:]
    /// The leaf expiry of each certificate in use (read when it was loaded: after a failed
    /// rotation, the one still presented, not the file on disk).
    var certificateExpiries: [(owner: String, file: String, notAfter: Int)] = []

    /// Loads every file `config` names. Throws the first `ConfigError` (naming the file, the
    /// line that named it and why); `ferry check` reports all of them (`TLSContexts.problems`).
    static func load(_ config: FerryConfig) throws(ConfigError) -> SecurityPlan {
        var plan = SecurityPlan()
        for listener in config.listeners {
            if let tls = listener.tls { plan.listenerContexts[listener.name] = try TLSContexts.server(tls) }
        }
        for service in config.services {
            if let tls = service.tls {
                plan.upstreamClients[service.name] = UpstreamTLSClient(context: try TLSContexts.client(tls), config: tls)
            }
        }
        plan.certificateExpiries = TLSContexts.expiries(config)
        return plan
    }

    /// How `service` connects: TLS with its client, or plain TCP.
    func connector(for service: String) -> UpstreamConnector {
        upstreamClients[service].map(UpstreamConnector.tls) ?? .tcp
    }
}
