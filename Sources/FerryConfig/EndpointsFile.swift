/// The endpoints file read by file discovery: YAML or JSON, either a list of endpoints or a
/// mapping with an `endpoints` list; each endpoint `host:port` or `{address, weight}`.
///
/// ```yaml
/// endpoints:
///   - 10.0.0.7:8080
///   - { address: 10.0.0.8:8080, weight: 2 }
/// ```
/// An empty list is valid (the service has no endpoints right now).
public enum EndpointsFile {
    public static func load(path: String) throws -> [EndpointConfig] {
        try parse(try ConfigLoader.readText(path), source: path)
    }

    public static func parse(_ text: String, source: String) throws -> [EndpointConfig] {
        if text.allSatisfy(\.isWhitespace) { return [] }
        let root = try ConfigLoader.compose(yaml: text, source: source)
        if case .sequence = root.node.content { return try ConfigLoader.decodeEndpointList(root, allowEmpty: true) }
        let m = try root.mapping(allowed: ["endpoints"])
        return try ConfigLoader.decodeEndpointList(try m.required("endpoints"), allowEmpty: true)
    }
}
