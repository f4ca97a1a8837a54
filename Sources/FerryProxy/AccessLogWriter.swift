import Atomics
import FerryConfig
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The access log's own thread: the event loops hand it whole batches of lines and never wait
/// on a disk or a pipe. What waits is bounded (`maxPendingBytes`): past it a batch is dropped
/// and counted, the calls it described were served all the same.
final class AccessLogWriter: Sendable {
    private let thread = NIOThreadPool(numberOfThreads: 1)
    private let pendingBytes = ManagedAtomic<Int>(0)
    private let droppedLines = ManagedAtomic<Int>(0)
    private let writtenLines = ManagedAtomic<Int>(0)
    private let failedWrites = ManagedAtomic<Int>(0)
    static let maxPendingBytes = 8 << 20

    init() { thread.start() }

    deinit {
        // Nothing is queued (each batch holds the writer); a server never shut down lets go.
        thread.shutdownGracefully { _ in }
    }

    /// Lines dropped because the destination did not keep up, lines written, writes that failed.
    var counts: (dropped: Int, written: Int, failed: Int) {
        (droppedLines.load(ordering: .relaxed), writtenLines.load(ordering: .relaxed), failedWrites.load(ordering: .relaxed))
    }

    /// Queues `bytes` (whole lines) for `sink`; false when it was dropped.
    @discardableResult
    func submit(_ bytes: [UInt8], lines: Int, to sink: AccessLogSink) -> Bool {
        let pending = pendingBytes.wrappingIncrementThenLoad(by: bytes.count, ordering: .relaxed)
        guard pending <= Self.maxPendingBytes else {
            pendingBytes.wrappingDecrement(by: bytes.count, ordering: .relaxed)
            droppedLines.wrappingIncrement(by: lines, ordering: .relaxed)
            return false
        }
        // Written whether the pool is running or shutting down (a cancelled item still writes).
        thread.submit { [self] _ in
            if sink.write(bytes) {
                writtenLines.wrappingIncrement(by: lines, ordering: .relaxed)
            } else {
                failedWrites.wrappingIncrement(ordering: .relaxed)
                droppedLines.wrappingIncrement(by: lines, ordering: .relaxed)
            }
            pendingBytes.wrappingDecrement(by: bytes.count, ordering: .relaxed)
        }
        return true
    }

    /// Returns when every batch submitted before it is written.
    func flushed() async {
        _ = try? await thread.runIfActive {}
    }

    func shutdown() async {
        await flushed()
        try? await thread.shutdownGracefully()
    }
}

/// Where the access log of one configuration goes: a file opened for appending (reopened by
/// each reload, so a rotated file is let go), standard output or standard error.
final class AccessLogSink: Sendable {
    let config: AccessLogConfig
    let writer: AccessLogWriter
    private let fd: Int32
    private let ownsDescriptor: Bool
    /// A pipe or terminal takes at most PIPE_BUF bytes in one atomic write: batches are cut at
    /// line ends below that, so no other writer's line lands inside one of ours.
    private let chunkLimit: Int

    struct OpenError: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "access_log.path: cannot open \(path) for appending: \(reason)" }
    }

    init(config: AccessLogConfig, writer: AccessLogWriter) throws {
        self.config = config
        self.writer = writer
        switch config.destination {
        case .stdout:
            fd = 1
            ownsDescriptor = false
        case .stderr:
            fd = 2
            ownsDescriptor = false
        case .file(let path):
            let opened = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard opened >= 0 else { throw OpenError(path: path, reason: String(cString: strerror(errno))) }
            fd = opened
            ownsDescriptor = true
        }
        var info = stat()
        let regular = fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        chunkLimit = regular ? Int.max : Int(PIPE_BUF)
    }

    deinit {
        if ownsDescriptor { close(fd) }
    }

    /// Writes all of `bytes` (whole lines); false when the destination refused them.
    func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            for piece in Self.pieces(bytes, limit: chunkLimit) {
                var offset = piece.lowerBound
                while offset < piece.upperBound {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, piece.upperBound - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return false }
                    offset += n
                }
            }
            return true
        }
    }

    /// `bytes` (whole lines) cut at line ends into pieces of at most `limit` bytes; a single
    /// longer line is a piece of its own.
    static func pieces(_ bytes: [UInt8], limit: Int) -> [Range<Int>] {
        guard bytes.count > limit else { return [0..<bytes.count] }
        var pieces: [Range<Int>] = []
        var offset = 0
        while offset < bytes.count {
            var end = min(bytes.count, offset + limit)
            if end < bytes.count {
                var cut = end
                while cut > offset && bytes[cut - 1] != UInt8(ascii: "\n") { cut -= 1 }
                end = cut > offset ? cut : (bytes[offset...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? bytes.count)
            }
            pieces.append(offset..<end)
            offset = end
        }
        return pieces
    }
}
