/// Who this Ferry is to the control plane: `envoy.config.core.v3.Node`, sent in the first
/// request of every stream. A control plane picks the configuration by it (istiod by `id`,
/// go-control-plane by `id` or `cluster`).
public struct XDSNode: Sendable, Equatable {
    public var id: String
    public var cluster: String
    /// String values only (`google.protobuf.Struct` allows more; Ferry's configuration gives strings).
    public var metadata: [String: String] = [:]
    public var region = ""
    public var zone = ""
    public var subZone = ""
    public var userAgentVersion = ""

    public init(id: String, cluster: String) {
        self.id = id
        self.cluster = cluster
    }

    /// The client features Ferry announces (none of the optional ones yet).
    static let userAgentName = "ferry"

    func write(to writer: inout ProtoWriter) {
        writer.string(1, id)
        writer.string(2, cluster)
        if !metadata.isEmpty {
            writer.message(3) { structure in
                for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                    // Struct { map<string, Value> fields = 1; }: entries { key = 1; value = 2 },
                    // Value { string string_value = 3; }
                    structure.message(1) { entry in
                        entry.string(1, key)
                        entry.message(2) { $0.string(3, value) }
                    }
                }
            }
        }
        if !(region.isEmpty && zone.isEmpty && subZone.isEmpty) {
            writer.message(4) { locality in
                locality.string(1, region)
                locality.string(2, zone)
                locality.string(3, subZone)
            }
        }
        writer.string(6, Self.userAgentName)
        writer.string(7, userAgentVersion)
    }
}

/// The encodings of ADS's two messages (`envoy.service.discovery.v3.DiscoveryRequest` and
/// `DiscoveryResponse`) and gRPC's message prefix around them.
public enum DiscoveryMessages {
    /// The gRPC method of aggregated discovery, state of the world.
    public static let streamPath = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
    /// google.rpc.Code INVALID_ARGUMENT, the code a NACK's status carries.
    static let invalidArgument: UInt64 = 3

    /// A request as protobuf bytes (no gRPC prefix).
    public static func encode(_ request: ADSRequest, node: XDSNode) -> [UInt8] {
        var writer = ProtoWriter()
        writer.string(1, request.versionInfo)
        if request.includesNode { writer.message(2) { node.write(to: &$0) } }
        writer.strings(3, request.resourceNames)
        writer.string(4, request.type.typeURL)
        writer.string(5, request.responseNonce)
        if let detail = request.errorDetail {
            writer.message(6) { status in
                status.varint(1, invalidArgument)
                status.string(2, detail)
            }
        }
        return writer.bytes
    }

    /// A protobuf message in gRPC's length prefix (uncompressed).
    public static func framed(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + message
    }

    /// A response's bytes (no gRPC prefix), its resources still encoded.
    public static func decodeResponse(_ bytes: ArraySlice<UInt8>, maxResources: Int = 100_000) -> Result<XDSDiscoveryResponse, XDSProblem> {
        do throws(XDSProblem) {
            return .success(try XDSDiscoveryResponse(decoding: bytes, maxResources: maxResources))
        } catch {
            return .failure(error.inside("DiscoveryResponse"))
        }
    }
}

/// A `DiscoveryResponse` decoded down to its resources, which stay bytes until their type's
/// decoder reads them. A resource in the protocol's `Resource` wrapper is unwrapped, keeping
/// the name the wrapper gives.
public struct XDSDiscoveryResponse: Sendable, Equatable {
    public struct Resource: Sendable, Equatable {
        /// The wrapper's name, if it was wrapped.
        public var name: String?
        var any: XDSAny
        public var typeURL: String { any.typeURL }
        public var bytes: ArraySlice<UInt8> { any.value }
    }

    public var versionInfo = ""
    public var typeURL = ""
    public var nonce = ""
    public var canary = false
    public var resources: [Resource] = []

    static let wrapperTypeURL = "type.googleapis.com/envoy.service.discovery.v3.Resource"

    init(decoding bytes: ArraySlice<UInt8>, maxResources: Int) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: versionInfo = try value.string("version_info")
            case 2:
                let field = "resources[\(resources.count)]"
                guard resources.count < maxResources else {
                    throw XDSProblem("more than \(maxResources) resources in one response").inside("resources")
                }
                let any = try value.decode(field) { bytes throws(XDSProblem) in try XDSAny(decoding: bytes) }
                resources.append(try any.typeURL == Self.wrapperTypeURL ? Self.unwrap(any, field) : Resource(name: nil, any: any))
            case 3: canary = try value.bool("canary")
            case 4: typeURL = try value.string("type_url")
            case 5: nonce = try value.string("nonce")
            default: break
            }
        }
    }

    private static func unwrap(_ any: XDSAny, _ field: String) throws(XDSProblem) -> Resource {
        var name: String?
        var inner: XDSAny?
        do {
            try ProtoReader.fields(of: any.value) { number, value throws(XDSProblem) in
                switch number {
                case 2: inner = try value.decode("resource") { bytes throws(XDSProblem) in try XDSAny(decoding: bytes) }
                case 3: name = try value.string("name")
                default: break
                }
            }
        } catch {
            throw error.inside(field)
        }
        guard let inner else { throw XDSProblem("is a Resource wrapper with no resource").inside(field) }
        return Resource(name: name, any: inner)
    }
}
