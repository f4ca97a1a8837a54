/// `google.protobuf.Duration` as it came: seconds and nanoseconds, unchecked.
struct XDSDuration: Sendable, Equatable {
    var seconds: Int64 = 0
    var nanos: Int32 = 0

    init(seconds: Int64 = 0, nanos: Int32 = 0) {
        self.seconds = seconds
        self.nanos = nanos
    }

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: seconds = try value.int64("seconds")
            case 2: nanos = try value.int32("nanos")
            default: break
            }
        }
    }

    /// The duration, if it is one protobuf allows that is not negative (seconds up to 10,000
    /// years, nanoseconds below one second), else what is wrong with it.
    func nonNegative() -> Result<Duration, XDSProblem> {
        guard (0...315_576_000_000).contains(seconds), (0...999_999_999).contains(nanos) else {
            if seconds < 0 || nanos < 0 { return .failure(XDSProblem("is negative (\(seconds) s, \(nanos) ns)")) }
            return .failure(XDSProblem("is out of range (\(seconds) s, \(nanos) ns)"))
        }
        return .success(.seconds(seconds) + .nanoseconds(Int64(nanos)))
    }
}

/// `google.protobuf.Any`: a message and the URL of its type.
struct XDSAny: Sendable, Equatable {
    var typeURL = ""
    var value: ArraySlice<UInt8> = []

    init(typeURL: String, value: ArraySlice<UInt8>) {
        self.typeURL = typeURL
        self.value = value
    }

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, field throws(XDSProblem) in
            switch number {
            case 1: typeURL = try field.string("type_url")
            case 2: value = try field.message("value")
            default: break
            }
        }
    }

    /// The type's full name: what follows the URL's last `/`.
    var typeName: Substring { typeURL.split(separator: "/", omittingEmptySubsequences: false).last ?? "" }
}

/// What protobuf's wrapper messages carry (`UInt32Value`, `BoolValue`: field 1).
enum XDSWrapper {
    static func uint32(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> UInt32 {
        var result: UInt32 = 0
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            if number == 1 { result = try value.uint32("value") }
        }
        return result
    }

    static func bool(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> Bool {
        var result = false
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            if number == 1 { result = try value.bool("value") }
        }
        return result
    }
}

/// One thing wrong with a resource, its bytes or its meaning, said so that a control plane's
/// operator can find it: the field path (`virtual_hosts[0].routes[2].route.timeout`) and what
/// is wrong.
public struct XDSProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: [String] = []
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    /// The same problem seen from further out: `inside("a", "b")` on `c: reason` is `a.b.c: reason`.
    func inside(_ names: String...) -> XDSProblem { inside(names) }

    func inside(_ names: [String]) -> XDSProblem {
        var outer = self
        outer.path.insert(contentsOf: names, at: 0)
        return outer
    }

    public var description: String { path.isEmpty ? reason : "\(path.joined(separator: ".")): \(reason)" }
}
