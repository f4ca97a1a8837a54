import FerryConfig
import FerryFixtures
@testable import FerryH2
import FerryProxy
import Logging
import NIOCore
import NIOPosix
import XCTest

/// One step of playing a recorded server back: wait until Ferry has opened the streams these
/// frames belong to, then send them (recorded server frames, stream ids mapped to Ferry's).
struct PlaybackStep {
    var streamsNeeded: Int
    var bytes: [UInt8]
}

/// The recorded server side, ready to play back, and the recorded requests to replay through Ferry.
struct ProxyReplayPlan {
    var steps: [PlaybackStep] = []
    /// Recorded client stream ids in the order the client opened them.
    var clientStreams: [UInt32] = []
    /// Request bodies the recorded client sent, per stream.
    var requestBodies: [UInt32: [UInt8]] = [:]

    init(_ fixture: Fixture) {
        var clientSplitter = FrameSplitter(expectPreface: true)
        var serverSplitter = FrameSplitter(expectPreface: false)
        var ferryIDs: [UInt32: UInt32] = [:]
        for record in fixture.records {
            switch record.direction {
            case .clientToServer:
                for frame in clientSplitter.append(record.bytes) {
                    if frame.type == FrameType.headers, ferryIDs[frame.streamID] == nil {
                        clientStreams.append(frame.streamID)
                        ferryIDs[frame.streamID] = UInt32(2 * clientStreams.count - 1)
                    }
                    if frame.type == FrameType.data {
                        let pad = frame.flags & 0x8 != 0 ? Int(frame.payload.first ?? 0) + 1 : 0
                        let data = frame.payload.dropFirst(pad > 0 ? 1 : 0).dropLast(max(0, pad - 1))
                        requestBodies[frame.streamID, default: []] += data
                    }
                }
            case .serverToClient:
                // One step per frame: a record may hold SETTINGS (needed before Ferry sends
                // anything) together with frames of streams Ferry has yet to open.
                for var frame in serverSplitter.append(record.bytes) {
                    var streamsNeeded = 0
                    if frame.streamID != 0 {
                        guard let mapped = ferryIDs[frame.streamID] else { continue }
                        frame.streamID = mapped
                        streamsNeeded = Int(mapped + 1) / 2
                    }
                    if frame.type == FrameType.goAway, frame.payload.count >= 4 {
                        let last = UInt32(frame.payload[0]) << 24 | UInt32(frame.payload[1]) << 16
                            | UInt32(frame.payload[2]) << 8 | UInt32(frame.payload[3])
                        let mapped = ferryIDs[last & 0x7fff_ffff] ?? 0
                        frame.payload.replaceSubrange(0..<4, with: [UInt8(mapped >> 24), UInt8(mapped >> 16 & 0xff),
                                                                    UInt8(mapped >> 8 & 0xff), UInt8(mapped & 0xff)])
                    }
                    let length = frame.payload.count
                    let bytes = [UInt8(length >> 16), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), frame.type, frame.flags,
                                 UInt8(frame.streamID >> 24), UInt8(frame.streamID >> 16 & 0xff),
                                 UInt8(frame.streamID >> 8 & 0xff), UInt8(frame.streamID & 0xff)] + frame.payload
                    steps.append(PlaybackStep(streamsNeeded: streamsNeeded, bytes: bytes))
                }
            }
        }
    }
}

/// Plays a recorded server back to whoever connects (Ferry's upstream connection).
final class PlaybackHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var steps: ArraySlice<PlaybackStep>
    private var splitter = FrameSplitter(expectPreface: true)
    private var opened = Set<UInt32>()

    init(steps: [PlaybackStep]) {
        self.steps = steps[...]
    }

    func channelActive(context: ChannelHandlerContext) {
        advance(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        for frame in splitter.append(Array(buffer.readableBytesView)) where frame.type == FrameType.headers {
            opened.insert(frame.streamID)
        }
        advance(context)
    }

    private func advance(_ context: ChannelHandlerContext) {
        while let step = steps.first, opened.count >= step.streamsNeeded {
            steps.removeFirst()
            var out = context.channel.allocator.buffer(capacity: step.bytes.count)
            out.writeBytes(step.bytes)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }
}

/// (3) Through the whole proxy: the recorded requests go through Ferry, the recorded server side
/// plays back as the upstream, and the client must receive exactly what the recorded server sent.
final class ProxyReplayTests: XCTestCase {
    /// Conversations that cannot be played back as they were: the client renegotiated SETTINGS
    /// mid-connection (the playback's ACKs would not match Ferry's), the client reset or timed
    /// out streams itself (the replaying client does not), or the server's GOAWAY makes Ferry
    /// retry elsewhere (covered by the misbehaving-upstream tests).
    static let notReplayable: [String: String] = [
        "h2-settings-change": "client renegotiates SETTINGS",
        "h2-rst-mid-stream": "client resets a stream",
        "grpcio-cancellation": "client cancels",
        "h2-server-goaway-in-flight": "GOAWAY makes Ferry retry on a new connection",
        "grpc-swift-ping-pong": "responses are paced by the client's own requests",
    ]

    func testEveryReplayableFixtureThroughTheProxy() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var replayed = 0
        for name in try fixtureNames() where Self.notReplayable[name] == nil {
            let fixture = try loadFixture(name)
            let expected = try loadExpectation(name)
            let plan = ProxyReplayPlan(fixture)
            let steps = plan.steps
            let upstream = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(PlaybackHandler(steps: steps))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            var http2 = HTTP2Config()
            http2.initialStreamWindow = 0x7fff_ffff
            http2.connectionWindow = 0x7fff_ffff
            http2.maxFrameSize = 16_777_215
            var service = ServiceConfig(name: "replay", endpoints: [EndpointConfig(address: HostPort(host: "127.0.0.1", port: upstream.localAddress!.port!))])
            service.pool.http2 = http2
            service.pool.maxConnectionsPerEndpoint = 1
            let config = FerryConfig(admin: nil, runtime: RuntimeConfig(),
                                     listeners: [ListenerConfig(name: "in", address: HostPort(host: "127.0.0.1", port: 0), service: "replay", http2: http2)],
                                     services: [service], source: "<replay>")
            let ferry = FerryServer(config: config, group: group, logger: Logger(label: "replay", factory: { _ in SwiftLogNoOpLogHandler() }))
            let port = try await ferry.start()[0].port!

            let results = try await replayClient(port: port, plan: plan, expected: expected, group: group)
            for (recordedID, stream) in results {
                if let summary = expected.server[String(recordedID)] {
                    stream.check(against: summary, "\(name) stream \(recordedID) through Ferry")
                }
            }
            XCTAssertEqual(results.count, plan.clientStreams.filter { expected.client[String($0)]?.headers != nil }.count, name)
            await ferry.shutdown(drainTimeout: .milliseconds(200))
            try await upstream.close()
            replayed += 1
        }
        XCTAssertGreaterThanOrEqual(replayed, 20, "too few fixtures replayed through the proxy")
        try await group.shutdownGracefully()
    }

    /// Sends the recorded requests through Ferry on one connection; returns what came back per
    /// recorded stream id once every stream has closed.
    private func replayClient(port: Int, plan: ProxyReplayPlan, expected: Expectation, group: EventLoopGroup) async throws -> [UInt32: ReplayedStream] {
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(H2Connection(role: .client, settings: replaySettings))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let streams = try await channel.eventLoop.submit { () -> [UInt32: ReplayedStream] in
            let h2 = try channel.pipeline.syncOperations.handler(type: H2Connection.self)
            h2.activateIfChannelActive()
            var out: [UInt32: ReplayedStream] = [:]
            for id in plan.clientStreams {
                guard let request = expected.client[String(id)], let headers = request.headers else { continue }
                let replayed = ReplayedStream()
                let body = plan.requestBodies[id] ?? []
                let endAtOnce = request.end_stream && body.isEmpty
                guard let stream = h2.openStream(headers: H2Headers(headers.map { ($0[0], $0[1]) }), endStream: endAtOnce, delegate: replayed) else {
                    continue
                }
                if !endAtOnce {
                    var buffer = ByteBufferAllocator().buffer(capacity: body.count)
                    buffer.writeBytes(body)
                    if request.end_stream {
                        stream.sendData(buffer, endStream: true)
                    } else if !body.isEmpty {
                        stream.sendData(buffer)
                    }
                }
                out[id] = replayed
            }
            return out
        }.get()
        for _ in 0..<200 {
            let allDone = try await channel.eventLoop.submit {
                streams.values.allSatisfy { $0.ended || $0.closeError != nil }
            }.get()
            if allDone { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        try await channel.close()
        return streams
    }
}
