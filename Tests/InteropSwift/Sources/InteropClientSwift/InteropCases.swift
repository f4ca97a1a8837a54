import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf

/// gRPC's interop cases (those needing no cloud credentials or caching proxy) on grpc-swift-2.
/// Sizes, metadata and messages are the ones gRPC's interop descriptions give.
struct CaseFailure: Error, CustomStringConvertible {
    let description: String
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CaseFailure(description: message()) }
}

typealias Transport = HTTP2ClientTransport.Posix
typealias TestClient = Grpc_Testing_TestService.Client<Transport>

let requestSizes = [27182, 8, 1828, 45904]
let responseSizes = [31415, 9, 2653, 58979]
let specialMessage = "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n"

func payload(_ size: Int) -> Grpc_Testing_Payload {
    var p = Grpc_Testing_Payload()
    p.body = Data(count: size)
    return p
}

func parameters(_ size: Int, compressed: Bool? = nil) -> Grpc_Testing_ResponseParameters {
    var p = Grpc_Testing_ResponseParameters()
    p.size = Int32(size)
    if let compressed { p.compressed.value = compressed }
    return p
}

func largeRequest() -> Grpc_Testing_SimpleRequest {
    var request = Grpc_Testing_SimpleRequest()
    request.responseSize = 314_159
    request.payload = payload(271_828)
    return request
}

func expectError(_ code: RPCError.Code, message: String? = nil, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as RPCError {
        try check(error.code == code, "expected \(code), got \(error.code): \(error.message)")
        if let message { try check(error.message == message, "message \(error.message.debugDescription) != \(message.debugDescription)") }
        return
    }
    throw CaseFailure(description: "expected \(code), the call succeeded")
}

/// True when a call this client cancelled ended the way grpc-swift-2 reports that: CANCELLED,
/// a CancellationError, an RPCError caused by one (cancelled before any response), or, when the
/// cancellation races the stream's teardown inside the library, UNAVAILABLE "Stream unexpectedly
/// closed with error." (measured directly against grpcio with no proxy involved: 1 run in 60).
func isCancellation(_ error: any Error) -> Bool {
    if error is CancellationError { return true }
    if let error = error as? RPCError {
        return error.code == .cancelled || error.cause is CancellationError
            || (error.code == .unavailable && error.message == "Stream unexpectedly closed with error.")
    }
    return false
}

struct InteropCases {
    let host: String
    let port: Int

    func withClient<R: Sendable>(_ body: (TestClient, GRPCClient<Transport>) async throws -> R) async throws -> R {
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: host, port: port), transportSecurity: .plaintext,
            config: .defaults { $0.compression.enabledAlgorithms = .all })
        return try await withGRPCClient(transport: transport) { grpc in
            try await body(TestClient(wrapping: grpc), grpc)
        }
    }

    static let names = ["empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
                        "custom_metadata", "status_code_and_message", "special_status_message", "unimplemented_method",
                        "unimplemented_service", "cancel_after_begin", "cancel_after_first_response",
                        "timeout_on_sleeping_server", "client_compressed_unary", "server_compressed_unary",
                        "client_compressed_streaming", "server_compressed_streaming", "soak"]

    func run(_ name: String) async throws {
        switch name {
        case "empty_unary": try await withClient { c, _ in _ = try await c.emptyCall(Grpc_Testing_Empty()) }
        case "large_unary": try await withClient { c, _ in try await largeUnary(c) }
        case "client_streaming": try await withClient { c, _ in try await clientStreaming(c) }
        case "server_streaming": try await withClient { c, _ in try await serverStreaming(c) }
        case "ping_pong": try await withClient { c, _ in try await pingPong(c) }
        case "empty_stream": try await withClient { c, _ in try await emptyStream(c) }
        case "custom_metadata": try await withClient { c, _ in try await customMetadata(c) }
        case "status_code_and_message": try await withClient { c, _ in try await statusCase(c, message: "test status message") }
        case "special_status_message": try await withClient { c, _ in try await statusCase(c, message: specialMessage) }
        case "unimplemented_method":
            try await withClient { c, _ in
                try await expectError(.unimplemented) { _ = try await c.unimplementedCall(Grpc_Testing_Empty()) }
            }
        case "unimplemented_service":
            try await withClient { _, grpc in
                let other = Grpc_Testing_UnimplementedService.Client(wrapping: grpc)
                try await expectError(.unimplemented) { _ = try await other.unimplementedCall(Grpc_Testing_Empty()) }
            }
        case "cancel_after_begin": try await withClient { c, _ in try await cancelAfterBegin(c) }
        case "cancel_after_first_response": try await withClient { c, _ in try await cancelAfterFirstResponse(c) }
        case "timeout_on_sleeping_server": try await withClient { c, _ in try await timeoutOnSleepingServer(c) }
        case "client_compressed_unary": try await withClient { c, _ in try await clientCompressedUnary(c) }
        case "server_compressed_unary": try await withClient { c, _ in try await serverCompressedUnary(c) }
        case "client_compressed_streaming": try await withClient { c, _ in try await clientCompressedStreaming(c) }
        case "server_compressed_streaming": try await withClient { c, _ in try await serverCompressedStreaming(c) }
        case "soak": try await soak()
        default: throw CaseFailure(description: "no such case \(name)")
        }
    }

    func largeUnary(_ c: TestClient) async throws {
        let reply = try await c.unaryCall(largeRequest())
        try check(reply.payload.body.count == 314_159 && reply.payload.body.allSatisfy { $0 == 0 },
                  "response payload of \(reply.payload.body.count) bytes")
    }

    func clientStreaming(_ c: TestClient) async throws {
        let reply = try await c.streamingInputCall(requestProducer: { writer in
            for size in requestSizes {
                var message = Grpc_Testing_StreamingInputCallRequest()
                message.payload = payload(size)
                try await writer.write(message)
            }
        })
        try check(reply.aggregatedPayloadSize == 74_922, "aggregated \(reply.aggregatedPayloadSize)")
    }

    func serverStreaming(_ c: TestClient) async throws {
        var request = Grpc_Testing_StreamingOutputCallRequest()
        request.responseParameters = responseSizes.map { parameters($0) }
        let sizes = try await c.streamingOutputCall(request) { response in
            var sizes: [Int] = []
            for try await message in response.messages { sizes.append(message.payload.body.count) }
            return sizes
        }
        try check(sizes == responseSizes, "sizes \(sizes)")
    }

    func pingPong(_ c: TestClient) async throws {
        let (pongs, pong) = AsyncStream.makeStream(of: Void.self)
        let sizes = try await c.fullDuplexCall(requestProducer: { writer in
            var received = pongs.makeAsyncIterator()
            for (requestSize, responseSize) in zip(requestSizes, responseSizes) {
                var request = Grpc_Testing_StreamingOutputCallRequest()
                request.responseParameters = [parameters(responseSize)]
                request.payload = payload(requestSize)
                try await writer.write(request)
                _ = await received.next()   // one response before the next request
            }
        }, onResponse: { response in
            var sizes: [Int] = []
            for try await message in response.messages {
                sizes.append(message.payload.body.count)
                pong.yield()
            }
            return sizes
        })
        try check(sizes == responseSizes, "sizes \(sizes)")
    }

    func emptyStream(_ c: TestClient) async throws {
        let count = try await c.fullDuplexCall(requestProducer: { _ in }, onResponse: { response in
            var n = 0
            for try await _ in response.messages { n += 1 }
            return n
        })
        try check(count == 0, "\(count) responses to an empty stream")
    }

    func customMetadata(_ c: TestClient) async throws {
        var metadata: Metadata = [:]
        metadata.addString("test_initial_metadata_value", forKey: "x-grpc-test-echo-initial")
        metadata.addBinary([0xab, 0xab, 0xab], forKey: "x-grpc-test-echo-trailing-bin")
        let unary = try await c.unaryCall(largeRequest(), metadata: metadata) { response in
            (Array(response.metadata[stringValues: "x-grpc-test-echo-initial"]),
             Array(response.trailingMetadata[binaryValues: "x-grpc-test-echo-trailing-bin"]),
             try response.message.payload.body.count)
        }
        try check(unary.0 == ["test_initial_metadata_value"], "initial metadata \(unary.0)")
        try check(unary.1 == [[0xab, 0xab, 0xab]], "trailing metadata \(unary.1)")
        try check(unary.2 == 314_159, "payload \(unary.2)")

        let streamed = try await c.fullDuplexCall(metadata: metadata, requestProducer: { writer in
            var request = Grpc_Testing_StreamingOutputCallRequest()
            request.responseParameters = [parameters(314_159)]
            request.payload = payload(271_828)
            try await writer.write(request)
        }, onResponse: { response in
            let initial = Array(response.metadata[stringValues: "x-grpc-test-echo-initial"])
            var trailing: [[UInt8]] = []
            var sizes: [Int] = []
            for try await part in response.bodyParts {
                switch part {
                case .message(let m): sizes.append(m.payload.body.count)
                case .trailingMetadata(let md): trailing = Array(md[binaryValues: "x-grpc-test-echo-trailing-bin"])
                }
            }
            return (initial, trailing, sizes)
        })
        try check(streamed.0 == ["test_initial_metadata_value"], "streaming initial metadata \(streamed.0)")
        try check(streamed.1 == [[0xab, 0xab, 0xab]], "streaming trailing metadata \(streamed.1)")
        try check(streamed.2 == [314_159], "streaming sizes \(streamed.2)")
    }

    func statusCase(_ c: TestClient, message: String) async throws {
        var status = Grpc_Testing_EchoStatus()
        status.code = 2
        status.message = message
        var request = Grpc_Testing_SimpleRequest()
        request.responseStatus = status
        try await expectError(.unknown, message: message) { _ = try await c.unaryCall(request) }
        var streamingRequest = Grpc_Testing_StreamingOutputCallRequest()
        streamingRequest.responseStatus = status
        let streaming = streamingRequest
        try await expectError(.unknown, message: message) {
            _ = try await c.fullDuplexCall(requestProducer: { writer in try await writer.write(streaming) }, onResponse: { response in
                for try await _ in response.messages {}
            })
        }
    }

    func cancelAfterBegin(_ c: TestClient) async throws {
        let call = Task {
            try await c.streamingInputCall(requestProducer: { _ in try await Task.sleep(for: .seconds(10)) })
        }
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        switch await call.result {
        case .success: throw CaseFailure(description: "the cancelled call succeeded")
        case .failure(let error): try check(isCancellation(error), "ended with \(error), not cancellation")
        }
    }

    func cancelAfterFirstResponse(_ c: TestClient) async throws {
        let (firsts, first) = AsyncStream.makeStream(of: Int.self)
        let call = Task {
            try await c.fullDuplexCall(requestProducer: { writer in
                var request = Grpc_Testing_StreamingOutputCallRequest()
                request.responseParameters = [parameters(31415)]
                request.payload = payload(27182)
                try await writer.write(request)
                try await Task.sleep(for: .seconds(10))
            }, onResponse: { response in
                for try await message in response.messages { first.yield(message.payload.body.count) }
            })
        }
        var iterator = firsts.makeAsyncIterator()
        let size = await iterator.next()
        try check(size == 31415, "first response \(String(describing: size))")
        call.cancel()
        switch await call.result {
        case .success: throw CaseFailure(description: "the cancelled call succeeded")
        case .failure(let error): try check(isCancellation(error), "ended with \(error), not cancellation")
        }
    }

    func timeoutOnSleepingServer(_ c: TestClient) async throws {
        var options = CallOptions.defaults
        options.timeout = .milliseconds(1)
        try await expectError(.deadlineExceeded) {
            _ = try await c.fullDuplexCall(options: options, requestProducer: { writer in
                var request = Grpc_Testing_StreamingOutputCallRequest()
                request.payload = payload(27182)
                try await writer.write(request)
                try await Task.sleep(for: .seconds(5))
            }, onResponse: { response in
                for try await _ in response.messages {}
            })
        }
    }

    func clientCompressedUnary(_ c: TestClient) async throws {
        var options = CallOptions.defaults
        options.compression = .gzip
        var request = largeRequest()
        request.expectCompressed.value = true
        let compressed = try await c.unaryCall(request, options: options)
        try check(compressed.payload.body.count == 314_159, "compressed: payload \(compressed.payload.body.count)")
        request.expectCompressed.value = false
        let plain = try await c.unaryCall(request)
        try check(plain.payload.body.count == 314_159, "uncompressed: payload \(plain.payload.body.count)")
    }

    func serverCompressedUnary(_ c: TestClient) async throws {
        for compressed in [true, false] {
            var request = largeRequest()
            request.responseCompressed.value = compressed
            let reply = try await c.unaryCall(request)
            try check(reply.payload.body.count == 314_159, "payload \(reply.payload.body.count) (compressed: \(compressed))")
        }
    }

    func clientCompressedStreaming(_ c: TestClient) async throws {
        var options = CallOptions.defaults
        options.compression = .gzip
        let reply = try await c.streamingInputCall(options: options, requestProducer: { writer in
            for size in [27182, 45904] {
                var message = Grpc_Testing_StreamingInputCallRequest()
                message.payload = payload(size)
                message.expectCompressed.value = true
                try await writer.write(message)
            }
        })
        try check(reply.aggregatedPayloadSize == 73_086, "aggregated \(reply.aggregatedPayloadSize)")
    }

    func serverCompressedStreaming(_ c: TestClient) async throws {
        var request = Grpc_Testing_StreamingOutputCallRequest()
        request.responseParameters = [parameters(31415, compressed: true), parameters(92653, compressed: false)]
        let sizes = try await c.streamingOutputCall(request) { response in
            var sizes: [Int] = []
            for try await message in response.messages { sizes.append(message.payload.body.count) }
            return sizes
        }
        try check(sizes == [31415, 92653], "sizes \(sizes)")
    }

    /// 1,000 large unary calls on one channel, then 100 on fresh channels.
    func soak() async throws {
        try await withClient { c, _ in
            for _ in 0..<1000 { try await largeUnary(c) }
        }
        for _ in 0..<100 {
            try await withClient { c, _ in try await largeUnary(c) }
        }
    }
}
