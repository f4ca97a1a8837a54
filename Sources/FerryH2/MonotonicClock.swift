import NIOCore

/// Monotonic nanoseconds, the time the event loop's timers count in. Production reads the
/// system's monotonic clock; a test passes a source (an EmbeddedEventLoop's virtual time), so
/// timestamps and timers agree and the request path runs without sockets or sleeps.
public struct MonotonicClock: Sendable {
    @usableFromInline let source: (@Sendable () -> Int64)?

    /// The system's monotonic clock (`NIODeadline.now()`).
    public static let system = MonotonicClock(source: nil)

    public init(source: (@Sendable () -> Int64)?) {
        self.source = source
    }

    @inlinable
    public func now() -> Int64 {
        if let source { return source() }
        return Int64(NIODeadline.now().uptimeNanoseconds)
    }
}
