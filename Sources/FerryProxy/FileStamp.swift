#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a file looks like from outside (inode, size, modification time), to notice that it
/// changed without reading it. A missing file has a stamp too, so its return is a change.
struct FileStamp: Equatable, Sendable {
    var path: String
    var inode: UInt64 = 0
    var size: Int64 = -1
    var modifiedSeconds: Int = 0
    var modifiedNanoseconds: Int = 0

    static func of(_ paths: [String]) -> [FileStamp] {
        paths.map { path in
            var info = stat()
            guard stat(path, &info) == 0 else { return FileStamp(path: path) }
            return FileStamp(path: path, inode: UInt64(info.st_ino), size: Int64(info.st_size),
                             modifiedSeconds: Int(info.st_mtim.tv_sec), modifiedNanoseconds: Int(info.st_mtim.tv_nsec))
        }
    }
}
