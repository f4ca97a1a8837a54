import FerryConfig
import FerryXDS
import FuzzSupport

/// What a control plane sends: a DiscoveryResponse and each resource in it, read by every
/// resource decoder (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment), and the
/// input itself as each kind of resource. Decoding never traps and answers a value or a
/// problem that can be printed (the NACK's error_detail).
@_cdecl("fuzz_xds_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var limits = XDSEndpointAssignment.Limits()
    limits.maxEndpoints = 1_000
    decodeAsEveryResource(bytes[...], limits: limits)
    if case .success(let response) = DiscoveryMessages.decodeResponse(bytes[...], maxResources: 100) {
        for resource in response.resources { decodeAsEveryResource(resource.bytes, limits: limits) }
        // Staged, checked across types and, if accepted, built into a configuration.
        var cache = XDSResourceCache()
        cache.limits = limits
        let staged = cache.stage(response)
        if staged.response.problems.isEmpty, let type = XDSResourceType(rawValue: response.typeURL) {
            cache.commit(staged, ADSResourceUpdate(type: type, versionInfo: response.versionInfo,
                                                   updated: staged.response.resourceNames, removed: []))
            let file = FerryConfig(admin: nil, runtime: RuntimeConfig(), listeners: [], services: [], source: "fuzz")
            _ = ConfigSummary.lines(XDSConfigBuilder.config(file: file, resources: cache))
        }
    }
    return 0
}

private func decodeAsEveryResource(_ bytes: ArraySlice<UInt8>, limits: XDSEndpointAssignment.Limits) {
    show(XDSListener.decode(bytes)) { "\($0.name) \($0.address) \($0.routes) \($0.ignored)" }
    show(XDSRouteTable.decode(bytes)) { "\($0.name) \($0.virtualHosts) \($0.clusterNames)" }
    show(XDSCluster.decode(bytes, limits: limits)) { "\($0.service) \($0.endpoints) \($0.ignored)" }
    show(XDSEndpointAssignment.decode(bytes, limits: limits)) { "\($0.clusterName) \($0.endpoints)" }
}

private func show<T>(_ result: Result<T, XDSProblem>, _ text: (T) -> String) {
    switch result {
    case .success(let value): _ = text(value)
    case .failure(let problem): _ = problem.description
    }
}
