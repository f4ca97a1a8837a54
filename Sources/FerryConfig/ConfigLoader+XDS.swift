/// The `xds` section: the control plane Ferry also takes listeners, routes and services from.
extension ConfigLoader {
    /// `xds: { server: host:port, node: { id, cluster, metadata: {k: v}, locality: {region, zone} }, resource_timeout }`
    static func decodeXDS(_ value: YAMLValue) throws -> XDSConfig {
        let m = try value.mapping(allowed: ["server", "node", "resource_timeout"])
        let server = try m.required("server").hostPort()
        let nodeValue = try m.required("node")
        let n = try nodeValue.mapping(allowed: ["id", "cluster", "metadata", "locality"])
        let idValue = try n.required("id")
        let id = try idValue.string()
        guard !id.isEmpty else { throw idValue.error("a node id names this Ferry to the control plane; it cannot be empty") }
        var node = XDSConfig.Node(id: id, cluster: try n["cluster"]?.string() ?? "")
        if let v = n["metadata"] {
            for (key, item) in try v.mapping(allowed: Self.anyKey(v)).entries { node.metadata[key] = try item.string() }
        }
        if let v = n["locality"] {
            let l = try v.mapping(allowed: ["region", "zone"])
            node.region = try l["region"]?.string() ?? ""
            node.zone = try l["zone"]?.string() ?? ""
        }
        var xds = XDSConfig(server: server, node: node)
        if let v = m["resource_timeout"] { xds.resourceTimeout = try v.duration(min: .seconds(1), max: .seconds(600)) }
        return xds
    }
}
