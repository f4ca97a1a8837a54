#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemRead = Darwin.read
#endif

/// Reading a whole (small) file: configuration, endpoint lists, resolv.conf. Plain POSIX, so
/// Ferry needs no Foundation (its libraries alone would add ~10 MB to the resident size).
public enum TextFile {
    public struct ReadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Files larger than this are refused: a configuration is never this big, and a wrong path
    /// (a log, a device) must not make the proxy read without bound.
    public static let maxSize = 16 << 20

    /// The file's bytes.
    public static func bytes(_ path: String) throws(ReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(description: Self.errnoText()) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: Self.errnoText())
            }
            if n == 0 { return result }
            guard result.count + n <= maxSize else { throw ReadError(description: "larger than \(maxSize >> 20) MiB") }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    /// The file as UTF-8 text; anything that is not valid UTF-8 is an error.
    public static func read(_ path: String) throws(ReadError) -> String {
        let bytes = try Self.bytes(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ReadError(description: "not UTF-8 text")
        }
        return text
    }

    /// The directory part of `path` ("." for a bare file name).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
