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

extension ProxyCall {
    /// Draws the call's faults: false when an abort (or a malformed fault request) answered
    /// it at once; else the delay to hold it for (0: none) and whether the request asked.
    /// Out of line: calls without faults pay only the check that there is an injector.
    @inline(never)
    func drawFault(_ injector: FaultInjector, _ headers: H2Headers, delay: inout Int64, asked: inout Bool) -> Bool {
        let decision = injector.decide(headers, isGRPC: isGRPC, random: &environment.random)
        guard !decision.isNone else { return true }
        if let invalid = decision.invalid {
            fail(invalid)
            return false
        }
        faultOrigin = injector.config.origin
        asked = decision.askedByRequest
        if decision.delayNanoseconds == 0, let abort = decision.abort {
            routeMetrics?.faultAborts[faultOrigin, default: 0] += 1
            fail(abort)
            return false
        }
        delay = decision.delayNanoseconds
        faultAbortAfterDelay = decision.abort
        return true
    }
}
