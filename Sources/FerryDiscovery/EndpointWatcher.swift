import Logging

/// Reads a source again whenever its last answer says to, and hands on each changed endpoint
/// set. On an error the last good set stays (and the error is logged once per streak); the
/// source is read again after a backoff of 1 s doubling up to 30 s. Errors, and answers with
/// no endpoint that say why, are reported (`onFailure`) until a read finds endpoints.
public final class EndpointWatcher: Sendable {
    public typealias OnChange = @Sendable ([Endpoint]) async -> Void
    /// A read failed (with why), or nil: a read succeeded after failures.
    public typealias OnFailure = @Sendable (String?) async -> Void

    private let task: Task<Void, Never>

    /// Starts watching after an initial read the caller already did (`initial`).
    public init(source: EndpointSource, initial: EndpointSnapshot?, service: String, logger: Logger,
                onFailure: @escaping OnFailure = { _ in }, onChange: @escaping OnChange) {
        task = Task {
            var last = initial?.endpoints
            var wait = initial?.refreshAfter ?? (initial == nil ? .seconds(1) : nil)
            var failureBackoff = Duration.seconds(1)
            var failing = initial == nil
            var reported = initial?.endpoints.isEmpty == true ? initial?.emptyBecause.map { "\(source): \($0)" } : nil
            while let delay = wait {
                do { try await Task.sleep(for: delay) } catch { return }
                do {
                    let snapshot = try await source.read()
                    if Task.isCancelled { return }
                    if failing {
                        logger.info("discovery recovered", metadata: ["service": "\(service)", "source": "\(source)"])
                    }
                    let empty = snapshot.endpoints.isEmpty ? snapshot.emptyBecause.map { "\(source): \($0)" } : nil
                    if failing || empty != reported {
                        if let empty, empty != reported {
                            logger.warning("discovery found no endpoints", metadata: ["service": "\(service)", "source": "\(source)",
                                                                                     "answer": "\(snapshot.emptyBecause!)"])
                        }
                        reported = empty
                        await onFailure(empty)
                    }
                    failing = false
                    failureBackoff = .seconds(1)
                    if snapshot.endpoints != last {
                        last = snapshot.endpoints
                        await onChange(snapshot.endpoints)
                    }
                    wait = snapshot.refreshAfter
                } catch {
                    if Task.isCancelled { return }
                    if !failing {
                        logger.warning("discovery failed; keeping the last endpoints", metadata: [
                            "service": "\(service)", "source": "\(source)", "error": "\(error)",
                            "endpoints": "\(last?.count ?? 0)"])
                    }
                    failing = true
                    await onFailure("\(source): \(error)")
                    wait = failureBackoff
                    failureBackoff = min(failureBackoff * 2, .seconds(30))
                }
            }
        }
    }

    public func stop() {
        task.cancel()
    }
}
