import FerryConfig
import NIOCore
import NIOSSL
import NIOTLS

/// How a listener connection's TLS handshake ended.
public enum ServerHandshakeOutcome: Sendable {
    /// h2 negotiated; the client's verified identity, nil when it presented no certificate
    /// (a listener whose client certificates are optional, or not asked for).
    case verified(identity: String?)
    /// `closedEarly`: the client went away before the handshake was done without a TLS error
    /// (a TCP health check, a port scan): worth a count, not a warning.
    case failed(reason: String, closedEarly: Bool)
}

/// Sits after a listener connection's TLS handler until the handshake is over: refuses a
/// client that did not negotiate h2 by ALPN, reads the verified client identity and reports
/// it before any request byte reaches HTTP/2, or reports why the handshake failed. Then it
/// leaves the pipeline (the request path has no extra handler).
public final class ServerHandshakeGate: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private var report: ((ServerHandshakeOutcome) -> Void)?

    public init(report: @escaping (ServerHandshakeOutcome) -> Void) {
        self.report = report
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = tlsEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard negotiated == "h2" else {
            finish(.failed(reason: "the client did not negotiate h2 by ALPN (\(negotiated.map { "it chose \($0)" } ?? "it offered no h2"))",
                           closedEarly: false))
            context.close(promise: nil)
            return
        }
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
        finish(.verified(identity: certificate.flatMap(WorkloadIdentity.of)))
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let eof = (error as? NIOSSLError).map { if case .handshakeFailed(.sslError(let stack)) = $0 {
            return stack == [BoringSSLInternalError.eofDuringHandshake]
        } else { return false } } ?? false
        finish(.failed(reason: eof ? "the client closed the connection during the TLS handshake" : TLSErrorText.describe(error),
                       closedEarly: eof))
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        finish(.failed(reason: "the client closed the connection during the TLS handshake", closedEarly: true))
        context.fireChannelInactive()
    }

    private func finish(_ outcome: ServerHandshakeOutcome) {
        guard let report = report.take() else { return }
        report(outcome)
    }
}

/// Why a TLS connection to an endpoint was not made: the handshake failed, the endpoint did
/// not negotiate h2, or it is not who the service says it must be (secure naming).
public struct UpstreamTLSError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Sits after an upstream connection's TLS handler until the handshake is over: checks that
/// h2 was negotiated and, when the service lists identities, that the endpoint's verified
/// certificate has one of them; then completes `verified` (with the endpoint's identity) and
/// leaves the pipeline. A handshake that fails, or does not finish within `timeout`, fails it.
public final class ClientHandshakeGate: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let identities: [IdentityPattern]
    /// Without identities: the DNS name the certificate must carry (the server name asked for).
    private let expectedName: String?
    private let timeout: TimeAmount
    private var promise: EventLoopPromise<String?>?
    private var timer: Scheduled<Void>?
    public let verified: EventLoopFuture<String?>

    public init(identities: [IdentityPattern], expectedName: String? = nil, timeout: TimeAmount, eventLoop: EventLoop) {
        self.identities = identities
        self.expectedName = expectedName
        self.timeout = timeout
        let promise = eventLoop.makePromise(of: String?.self)
        self.promise = promise
        self.verified = promise.futureResult
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let timeout = self.timeout
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (gate, context) = loopBound.value
            gate.fail(UpstreamTLSError("the TLS handshake did not finish within \(timeout)"))
            context.close(promise: nil)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = tlsEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard negotiated == "h2" else {
            fail(UpstreamTLSError("the endpoint did not negotiate h2 by ALPN (\(negotiated.map { "it chose \($0)" } ?? "no ALPN answer"))"))
            context.close(promise: nil)
            return
        }
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self).peerCertificate
        let identity = certificate.flatMap(WorkloadIdentity.of)
        if identities.isEmpty, let expectedName, let certificate, !WorkloadIdentity.hasDNSName(expectedName, certificate) {
            // swift-nio-ssl's own check also accepts an IP SAN matching the address connected to.
            fail(UpstreamTLSError("the endpoint's certificate is not valid for \(expectedName) (its DNS names: "
                                  + "\(WorkloadIdentity.dnsNames(certificate).joined(separator: ", ")))"))
            context.close(promise: nil)
            return
        }
        if !identities.isEmpty {
            guard let identity, identities.contains(where: { $0.matches(identity) }) else {
                let wanted = identities.map(\.description).joined(separator: ", ")
                fail(UpstreamTLSError("the endpoint's certificate is \(identity ?? "without a SPIFFE ID or DNS name"), not one of the service's identities (\(wanted))"))
                context.close(promise: nil)
                return
            }
        }
        timer?.cancel()
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        promise.take()?.succeed(identity)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(UpstreamTLSError("TLS " + TLSErrorText.describe(error)))
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        fail(UpstreamTLSError("the endpoint closed the connection during the TLS handshake"))
        context.fireChannelInactive()
    }

    private func fail(_ error: UpstreamTLSError) {
        timer?.cancel()
        promise.take()?.fail(error)
    }
}
