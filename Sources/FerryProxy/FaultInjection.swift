import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy

/// A route's or a method's fault settings in the loop's units, and the draw for each call.
/// Shares are kept per million calls, so a draw is one random number and a comparison.
final class FaultInjector {
    let config: FaultConfig
    private let abortPerMillion: UInt64
    private let delayPerMillion: UInt64
    private let delayNanoseconds: Int64
    private let maxHeaderDelayNanoseconds: Int64

    init(_ config: FaultConfig) {
        self.config = config
        abortPerMillion = UInt64(((config.abort?.percent ?? 0) * 10_000).rounded())
        delayPerMillion = UInt64(((config.delay?.percent ?? 0) * 10_000).rounded())
        delayNanoseconds = config.delay?.duration.totalNanoseconds ?? 0
        maxHeaderDelayNanoseconds = config.maxHeaderDelay.totalNanoseconds
    }

    /// What a call gets: a delay before its first attempt (0: none), then an abort (nil: none).
    struct Decision {
        var delayNanoseconds: Int64 = 0
        var abort: ProxyError?
        /// The request asked for this in `ferry-fault-*` headers (they are not forwarded).
        var askedByRequest = false
        /// The request's `ferry-fault-*` headers could not be read: the call's answer.
        var invalid: ProxyError?

        var isNone: Bool { delayNanoseconds == 0 && abort == nil && invalid == nil }
    }

    func decide(_ headers: H2Headers, isGRPC: Bool, random: inout FastRandom) -> Decision {
        var decision = Decision()
        if delayPerMillion > 0, random.next() % 1_000_000 < delayPerMillion { decision.delayNanoseconds = delayNanoseconds }
        if let abort = config.abort, abortPerMillion > 0, random.next() % 1_000_000 < abortPerMillion {
            decision.abort = .injectedFault(grpcStatus: abort.grpcStatus, httpStatus: abort.httpStatus, origin: config.origin)
        }
        if config.fromHeaders { readHeaders(headers, isGRPC: isGRPC, into: &decision) }
        return decision
    }

    /// `ferry-fault-abort`: a gRPC status (name or number) for gRPC calls, an HTTP status
    /// (400-599) for plain HTTP/2; `ferry-fault-delay`: a duration such as `250ms`, up to
    /// `max_header_delay`. What the request asks is applied to it, whatever the shares.
    private func readHeaders(_ headers: H2Headers, isGRPC: Bool, into decision: inout Decision) {
        if let text = headers.first(FaultConfig.abortHeader) {
            decision.askedByRequest = true
            if isGRPC {
                let code = Int(text).flatMap(GRPCStatusCode.init(rawValue:)) ?? GRPCStatusCode(name: text.uppercased())
                guard let code, code != .ok else {
                    decision.invalid = .invalidFaultHeader(FaultConfig.abortHeader, text, expected: "a gRPC status other than OK, such as UNAVAILABLE or 14")
                    return
                }
                decision.abort = .injectedFault(grpcStatus: code, httpStatus: 503, origin: "\(config.origin), asked in \(FaultConfig.abortHeader)")
            } else {
                guard let status = Int(text), (400...599).contains(status) else {
                    decision.invalid = .invalidFaultHeader(FaultConfig.abortHeader, text, expected: "an HTTP status from 400 to 599")
                    return
                }
                decision.abort = .injectedFault(grpcStatus: GRPCStatusMapping.status(forHTTPStatus: status), httpStatus: status,
                                                origin: "\(config.origin), asked in \(FaultConfig.abortHeader)")
            }
        }
        if let text = headers.first(FaultConfig.delayHeader) {
            decision.askedByRequest = true
            guard case .success(let duration) = ConfigValues.parseDuration(text), duration > .zero,
                  duration.totalNanoseconds <= maxHeaderDelayNanoseconds else {
                decision.invalid = .invalidFaultHeader(FaultConfig.delayHeader, text,
                                                       expected: "a duration such as 250ms, up to \(ConfigSummary.format(config.maxHeaderDelay))")
                return
            }
            decision.delayNanoseconds = duration.totalNanoseconds
        }
    }

    /// Whether a header field is one of the fault requests (removed from a request that used them).
    static func isFaultHeader(_ name: UnsafeRawBufferPointer) -> Bool {
        name.count > 12 && name.prefix(12).elementsEqual("ferry-fault-".utf8)
    }
}
