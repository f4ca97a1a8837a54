/// A gRPC request path, `/package.Service/Method`, split into its service and method.
public struct GRPCPath: Sendable, Hashable, CustomStringConvertible {
    /// The fully qualified service name, e.g. `helloworld.Greeter`.
    public let service: String
    /// The method name, e.g. `SayHello`.
    public let method: String

    public init(service: String, method: String) {
        self.service = service
        self.method = method
    }

    /// Parses a `:path` value. Returns nil for anything that is not exactly
    /// `/` service `/` method with both parts non-empty and no query, fragment or extra `/`.
    public init?(_ path: String) {
        let bytes = Array(path.utf8)
        guard bytes.count >= 4, bytes[0] == UInt8(ascii: "/") else { return nil }
        let rest = bytes[1...]
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let service = rest[rest.startIndex..<slash]
        let method = rest[(slash + 1)...]
        guard !service.isEmpty, !method.isEmpty,
              !method.contains(UInt8(ascii: "/")),
              !bytes.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") || $0 <= 0x20 || $0 == 0x7f })
        else { return nil }
        self.service = String(decoding: service, as: UTF8.self)
        self.method = String(decoding: method, as: UTF8.self)
    }

    public var path: String { "/\(service)/\(method)" }
    public var description: String { path }
}
