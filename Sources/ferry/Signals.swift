import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits for SIGTERM or SIGINT; returns the signal's name.
enum Signals {
    static func waitForTermination() async -> String {
        await withCheckedContinuation { continuation in
            let queue = DispatchQueue(label: "ferry.signals")
            let fired = SignalOnce(continuation)
            for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler { fired.resume(name) }
                source.resume()
                SignalOnce.keep(source)
            }
        }
    }
}

/// Resumes a continuation once, from whichever signal comes first (touched only on one queue).
private final class SignalOnce: @unchecked Sendable {
    private var continuation: CheckedContinuation<String, Never>?
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<String, Never>) {
        self.continuation = continuation
    }

    func resume(_ name: String) {
        continuation?.resume(returning: name)
        continuation = nil
    }

    static func keep(_ source: DispatchSourceSignal) { sources.append(source) }
}
