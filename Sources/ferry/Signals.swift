import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the running proxy reacts to: a termination signal, or a request to reload.
enum ControlEvent: Sendable {
    case terminate(signal: String)
    case reload(reason: String)
}

/// Turns SIGTERM and SIGINT into `.terminate`, SIGHUP into `.reload`.
enum Signals {
    static func events(into continuation: AsyncStream<ControlEvent>.Continuation) {
        let queue = DispatchQueue(label: "ferry.signals")
        let handled: [(Int32, ControlEvent)] = [(SIGTERM, .terminate(signal: "SIGTERM")), (SIGINT, .terminate(signal: "SIGINT")),
                                                (SIGHUP, .reload(reason: "SIGHUP"))]
        for (number, event) in handled {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(event) }
            source.resume()
            SignalSources.keep(source)
        }
    }
}

/// Keeps the signal sources alive for the life of the process (touched once, at start).
private enum SignalSources {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []
    static func keep(_ source: DispatchSourceSignal) { sources.append(source) }
}

extension Signals {
    /// Waits for SIGTERM or SIGINT (SIGHUP is ignored here); returns the signal's name.
    static func waitForTermination() async -> String {
        let (stream, continuation) = AsyncStream.makeStream(of: ControlEvent.self)
        events(into: continuation)
        for await event in stream {
            if case .terminate(let signal) = event { return signal }
        }
        return "end of signals"
    }
}
