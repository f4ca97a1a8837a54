/// Gives each distinct gRPC method path a small slot number, looked up by the path's bytes
/// (no `String` per request). At most `capacity` methods get their own slot; any further
/// one, and every path that is not a gRPC method, shares slot 0 ("other"): a client sending
/// random paths cannot grow the metrics without bound.
package struct MethodLabels {
    package static let capacity = 64
    private static let tableSize = 128      // power of two, twice the capacity

    private var table = [Int](repeating: -1, count: MethodLabels.tableSize)  // -> index into `paths`
    private var paths: [[UInt8]] = []
    /// Slot n + 1 belongs to `names[n]`; slot 0 is "other".
    private(set) var names: [String] = []

    package mutating func slot(for path: UnsafeRawBufferPointer) -> Int {
        guard let method = Self.methodPart(path) else { return 0 }
        var hash: UInt32 = 2_166_136_261
        for byte in method { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        var bucket = Int(hash) & (Self.tableSize - 1)
        while true {
            let index = table[bucket]
            if index < 0 { break }
            if paths[index].count == method.count, paths[index].withUnsafeBytes({ $0.elementsEqual(method) }) {
                return index + 1
            }
            bucket = (bucket + 1) & (Self.tableSize - 1)
        }
        guard paths.count < Self.capacity else { return 0 }
        table[bucket] = paths.count
        paths.append(Array(method))
        names.append(String(decoding: method, as: UTF8.self))
        return paths.count
    }

    /// `pkg.Service/Method` from `/pkg.Service/Method`; nil for anything else.
    private static func methodPart(_ path: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer.SubSequence? {
        guard path.count >= 4, path[0] == UInt8(ascii: "/") else { return nil }
        var slashes = 0
        for byte in path.dropFirst() {
            if byte == UInt8(ascii: "/") { slashes += 1 }
            if byte <= 0x20 || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte >= 0x7f { return nil }
        }
        guard slashes == 1, path[1] != UInt8(ascii: "/"), path.last != UInt8(ascii: "/") else { return nil }
        return path.dropFirst()
    }
}
