/// The xDS resource types Ferry subscribes to over ADS, by the type URL the protocol names them
/// with (`type.googleapis.com/` and the message's full protobuf name).
public enum XDSResourceType: String, CaseIterable, Sendable, Hashable {
    case listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    case routeConfiguration = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    case cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    case clusterLoadAssignment = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

    public var typeURL: String { rawValue }

    /// The short name operators know the type by (LDS, RDS, CDS, EDS), for logs and errors.
    public var shortName: String {
        switch self {
        case .listener: "LDS"
        case .routeConfiguration: "RDS"
        case .cluster: "CDS"
        case .clusterLoadAssignment: "EDS"
        }
    }

    /// Whether, in the state-of-the-world protocol, every response carries every resource of
    /// the subscription, so a resource a response leaves out has been removed (Listener and
    /// Cluster). For the others a response carries only what changed; a resource goes away only
    /// when the client stops asking for it.
    public var responsesAreComplete: Bool {
        switch self {
        case .listener, .cluster: true
        case .routeConfiguration, .clusterLoadAssignment: false
        }
    }
}
