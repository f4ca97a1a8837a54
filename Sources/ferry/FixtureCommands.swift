#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FerryConfig
import FerryFixtures
import NIOCore
import NIOPosix

struct Record: FerryCommand {
    static let spec = CommandSpec(
        words: ["record"], abstract: "Record HTTP/2 conversations as fixtures: a transparent TCP tap between a client and a server.",
        options: [
            OptionSpec(long: "listen", value: "host:port", required: true, help: "Address to accept the client on."),
            OptionSpec(long: "upstream", value: "host:port", required: true, help: "The real server."),
            OptionSpec(long: "out", value: "directory", required: true, help: "Directory for the fixture files."),
            OptionSpec(long: "name", value: "name", defaultValue: "conversation",
                       help: "Fixture name (files NAME.fixture, NAME-2.fixture, ...)."),
            OptionSpec(long: "meta", value: "key=value", repeatable: true, help: "Metadata for the files, e.g. --meta client=grpcio."),
            OptionSpec(long: "connections", value: "n", help: "Exit after this many connections were recorded."),
        ])

    let listen: String
    let upstream: String
    let out: String
    let name: String
    let meta: [String]
    let connections: Int?

    init(_ arguments: ParsedArguments) throws(UsageError) {
        listen = arguments.string("listen")!
        upstream = arguments.string("upstream")!
        out = arguments.string("out")!
        name = arguments.string("name")!
        meta = arguments.strings("meta")
        connections = try arguments.int("connections")
    }

    func run() async throws {
        guard case .success(let listenAddress) = HostPort.parse(listen), case .success(let upstreamAddress) = HostPort.parse(upstream) else {
            throw UsageError("--listen and --upstream take host:port")
        }
        let metadata = [("name", name)] + meta.map { item -> (key: String, value: String) in
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
        try makeDirectories(out)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let recorder = try await FixtureRecorder.start(
            .init(listenHost: listenAddress.host, listenPort: listenAddress.port, upstreamHost: upstreamAddress.host,
                  upstreamPort: upstreamAddress.port, directory: out, name: name, metadata: metadata,
                  maxConnections: connections),
            group: group)
        // Unbuffered: scripts wait for this line on a pipe before they connect.
        print("recording on \(listenAddress.host):\(recorder.port) -> \(upstream)")
        fflush(nil)
        if let connections {
            while recorder.writtenFiles.count + recorder.failures.count < connections {
                _ = await recorder.waitForFiles(connections, timeout: .seconds(3600))
            }
        } else {
            _ = await Signals.waitForTermination()
        }
        await recorder.stop()
        for file in recorder.writtenFiles { print("wrote \(file)") }
        for failure in recorder.failures { printError("ferry record: \(failure)") }
        try? await group.shutdownGracefully()
        if !recorder.failures.isEmpty { throw ExitStatus(1) }
    }
}

struct FixtureShow: FerryCommand {
    static let spec = CommandSpec(words: ["fixture", "show"], abstract: "Print every frame of a fixture, headers decoded.",
                                  arguments: [("file", "Fixture file.")])

    let file: String

    init(_ arguments: ParsedArguments) { file = arguments.argument(0) }

    func run() throws {
        let fixture: Fixture
        do {
            fixture = try Fixture(parsing: try readFile(file))
        } catch {
            printError("\(file): \(error)")
            throw ExitStatus(1)
        }
        for (key, value) in fixture.metadata { print("# \(key): \(value)") }
        let bytesIn = fixture.bytes(.clientToServer).count, bytesOut = fixture.bytes(.serverToClient).count
        print("# \(fixture.records.count) records, \(bytesIn) bytes client->server, \(bytesOut) bytes server->client")
        do {
            for frame in try decodeFrames(fixture) {
                for line in FrameDescription.lines(frame) { print(line) }
            }
        } catch {
            printError("\(file): \(error)")
            throw ExitStatus(1)
        }
    }
}

/// `mkdir -p`.
private func makeDirectories(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part + "/"
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw UsageError("cannot create the directory \(prefix): \(String(cString: strerror(errno)))")
        }
    }
}
