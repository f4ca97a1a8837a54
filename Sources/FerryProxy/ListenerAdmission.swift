import Atomics
import NIOCore

/// The client connections open on one listener across every event loop, held to the
/// listener's `max_connections`. One relaxed atomic per connection accepted and closed; kept
/// across reloads by the control plane (connections accepted earlier count until they close).
final class ListenerAdmission: Sendable {
    private let open = ManagedAtomic<Int>(0)

    /// Takes a place for a new connection; false (nothing taken) when `limit` are open.
    func admit(limit: Int) -> Bool {
        if open.wrappingIncrementThenLoad(ordering: .relaxed) > limit {
            open.wrappingDecrement(ordering: .relaxed)
            return false
        }
        return true
    }

    func release() {
        open.wrappingDecrement(ordering: .relaxed)
    }

    var openConnections: Int { open.load(ordering: .relaxed) }
}

/// Answers a connection over the listener's limit: the server preface (an empty SETTINGS), a
/// GOAWAY ENHANCE_YOUR_CALM saying why, our side shut, and the socket closed once the client
/// closes or after a second (closing with the client's preface unread would send a TCP reset,
/// which can overtake the GOAWAY).
final class ConnectionLimitRefusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let debugData = "ferry: connection limit reached"

    /// SETTINGS (type 4, empty) then GOAWAY (type 7): last stream 0, ENHANCE_YOUR_CALM (0xb).
    static var frames: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
        let debug = Array(debugData.utf8)
        let length = 8 + debug.count
        buffer.writeBytes([UInt8(length >> 16), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), 7, 0, 0, 0, 0, 0])
        buffer.writeBytes([0, 0, 0, 0, 0, 0, 0, 0xb] + debug)
        return buffer
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(Self.frames), promise: nil)
        context.close(mode: .output, promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}   // the client's bytes are not read

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
