import FerryH2

/// What waits in an `UpstreamPool` for a stream: a call's attempt. The pool lends it a
/// connection with room for one stream, tells it why none will come, or that the pool retired
/// (its endpoint left the service) so it should be placed elsewhere. Every call arrives on the
/// pool's event loop.
package protocol UpstreamWaiter: AnyObject {
    /// The queue the waiter takes its turn in (its client connection's): waiters of one key
    /// are served in order, keys take turns.
    var fairnessKey: ObjectIdentifier { get }
    /// `connection` has room for one more stream now.
    func upstreamReady(_ connection: H2Connection)
    func upstreamFailed(_ failure: UpstreamFailure)
    func poolRetired()
}

/// Why a pool will not lend a waiter a connection.
package enum UpstreamFailure: Equatable {
    /// The pool is draining (Ferry is shutting down).
    case shuttingDown
    /// The pool's queue holds `max_pending_calls` already.
    case overloaded(endpoint: String)
    /// The connection to the endpoint could not be made; nothing was sent.
    case connectFailed(endpoint: String, reason: String)
}
