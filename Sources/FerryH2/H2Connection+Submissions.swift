import CNghttp2

/// Every nghttp2 call that can fail goes through `check`, so no failure passes unseen: a
/// submission that did not happen would leave a stream waiting for frames that never come.
extension H2Connection {
    /// What `rv`, the return of nghttp2's `call`, means here; true when it succeeded.
    ///
    /// - A fatal code (nghttp2_is_fatal: out of memory, a callback failure) leaves the session
    ///   unusable: the connection ends.
    /// - Any other failure of a call on `stream` (headers or trailers not submitted) resets
    ///   that stream with INTERNAL_ERROR, so its peer and its owner hear of it.
    /// - Any other failure of a call for the connection, or one passed `stream: nil` because
    ///   its failures are no-ops (returning window of a stream that just closed, resuming data
    ///   that was not deferred, a second GOAWAY), changes nothing.
    @discardableResult
    func check(_ rv: Int32, _ call: StaticString, stream: H2Stream? = nil) -> Bool {
        guard rv < 0 else { return true }
        if nghttp2_is_fatal(rv) != 0 {
            noteFailure(.internalError("\(call) failed: \(String(cString: nghttp2_strerror(rv)))"))
            endAfterFatalError()
            return false
        }
        if let stream, stream.localResetCode == nil { reset(stream, code: .internalError) }
        return false
    }
}
