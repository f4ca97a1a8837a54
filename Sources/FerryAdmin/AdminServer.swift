import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin HTTP/1.1 listener (never on a data listener's address), served on the control
/// plane's thread: `/metrics`, `/ready`, `/live`, `/config`, `/endpoints`.
package final class AdminServer: Sendable {
    package struct Response: Sendable {
        package var status: HTTPResponseStatus
        package var contentType: String
        package var body: String

        package init(status: HTTPResponseStatus, contentType: String, body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    package typealias Route = @Sendable (_ path: String) async -> Response

    package let channel: Channel

    private init(channel: Channel) {
        self.channel = channel
    }

    package static func start(host: String, port: Int, group: EventLoopGroup, route: @escaping Route) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(route: route))
                }
            }
            .bind(host: host, port: port)
            .get()
        return AdminServer(channel: channel)
    }

    package func stop() async {
        try? await channel.close()
    }
}

/// One admin connection: answers GET (and HEAD) requests one at a time.
private final class AdminHandler: ChannelInboundHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    private let route: AdminServer.Route
    private var request: HTTPRequestHead?

    package init(route: @escaping AdminServer.Route) {
        self.route = route
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let keepAlive = head.isKeepAlive
        let version = head.version
        let isHead = head.method == .HEAD
        guard head.method == .GET || isHead else {
            write(context: context, version: version, keepAlive: keepAlive, omitBody: false,
                  AdminServer.Response(status: .methodNotAllowed, contentType: "text/plain; charset=utf-8", body: "only GET\n"))
            return
        }
        let path = String(head.uri.prefix { $0 != "?" })
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: AdminServer.Response.self)
        let route = self.route
        promise.completeWithTask { await route(path) }
        promise.futureResult.whenSuccess { response in
            let (handler, context) = bound.value
            handler.write(context: context, version: version, keepAlive: keepAlive, omitBody: isHead, response)
        }
    }

    private func write(context: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool, omitBody: Bool,
                       _ response: AdminServer.Response) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.utf8.count))
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        if !omitBody {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }
}
