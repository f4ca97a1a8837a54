/// What the ADS state machine asks to be sent: one `DiscoveryRequest` of the state-of-the-world
/// protocol, before encoding. The shell adds the node when `includesNode` says so (the first
/// request on each stream).
public struct ADSRequest: Sendable, Equatable {
    public var type: XDSResourceType
    /// The last version of this type the client accepted ("" before any). An ACK carries the
    /// version it accepts; a NACK still carries the last good one.
    public var versionInfo: String
    /// The resources asked for, sorted; empty asks for every resource of the type.
    public var resourceNames: [String]
    /// The nonce of the last response of this type on this stream ("" before any).
    public var responseNonce: String
    /// Set on a NACK: what was wrong with the response `responseNonce` names.
    public var errorDetail: String?
    public var includesNode: Bool

    public init(type: XDSResourceType, versionInfo: String, resourceNames: [String], responseNonce: String,
                errorDetail: String? = nil, includesNode: Bool = false) {
        self.type = type
        self.versionInfo = versionInfo
        self.resourceNames = resourceNames
        self.responseNonce = responseNonce
        self.errorDetail = errorDetail
        self.includesNode = includesNode
    }
}

/// A `DiscoveryResponse` once decoded: its type, version and nonce, the names of the resources it
/// carries in order, and what decoding and validating them found wrong (empty when nothing).
/// The decoded resources themselves stay with the caller until the state machine says to apply.
public struct ADSResponse: Sendable, Equatable {
    public var typeURL: String
    public var versionInfo: String
    public var nonce: String
    public var resourceNames: [String]
    public var problems: [String]

    public init(typeURL: String, versionInfo: String, nonce: String, resourceNames: [String], problems: [String] = []) {
        self.typeURL = typeURL
        self.versionInfo = versionInfo
        self.nonce = nonce
        self.resourceNames = resourceNames
        self.problems = problems
    }
}

/// An accepted response, for the caller to apply: the resources to take as sent (`updated`),
/// and those now known not to exist (`removed`: left out of a complete response, whether held
/// before or only asked for).
public struct ADSResourceUpdate: Sendable, Equatable {
    public var type: XDSResourceType
    public var versionInfo: String
    public var updated: [String]
    public var removed: [String]

    public init(type: XDSResourceType, versionInfo: String, updated: [String], removed: [String]) {
        self.type = type
        self.versionInfo = versionInfo
        self.updated = updated
        self.removed = removed
    }
}

/// What the shell around `ADSStateMachine` does, in order.
public enum ADSAction: Sendable, Equatable {
    /// Open a new `StreamAggregatedResources` stream; the requests that follow go on it.
    case openStream
    case send(ADSRequest)
    /// Take the response's resources as the configuration (then send the ACK that follows).
    case apply(ADSResourceUpdate)
    /// These resources were asked for and did not come within the resource timeout, or a
    /// complete response left them out: the configuration goes on without them.
    case resourcesDoNotExist(XDSResourceType, [String])
    /// A response was refused (a NACK follows) or, if of a type nobody subscribed to, ignored;
    /// the last good resources keep serving. For the log, once.
    case rejected(type: String, nonce: String, errorDetail: String)
    case closeStream
}
