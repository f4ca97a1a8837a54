#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FerryConfig
import FerryProxy
import FerryTLS
import Logging
import NIOCore
import NIOPosix

struct Run: FerryCommand {
    static let spec = CommandSpec(
        words: ["run"], abstract: "Run the proxy with a configuration file.",
        discussion: "SIGHUP, or a change to the file (unless runtime.watch_config is false), reloads it; SIGTERM drains and exits.",
        options: [
            OptionSpec(long: "config", short: "c", value: "path", required: true, help: "Path of the YAML configuration."),
            OptionSpec(long: "log-level", value: "level",
                       help: "Log level: trace, debug, info, notice, warning, error, critical (default: the config's log.level, else info)."),
            OptionSpec(long: "log-format", value: "format",
                       help: "Log lines as logfmt text, or json, one object per line (default: the config's log.format, else text)."),
        ])

    let config: String
    let logLevel: String?
    let logFormat: String?

    init(_ arguments: ParsedArguments) throws(UsageError) {
        config = arguments.string("config")!
        logLevel = arguments.string("log-level")
        logFormat = arguments.string("log-format")
        // A flag's mistake is reported before the configuration is read.
        _ = try LogSetup.parse(level: logLevel, format: logFormat, config: LogConfig())
    }

    func run() async throws {
        let loaded: FerryConfig
        let text: [UInt8]?
        do {
            text = try? TextFile.bytes(config)
            loaded = try ConfigLoader.load(path: config)
        } catch let error as ConfigError {
            printError("ferry: invalid configuration: \(error)")
            throw ExitStatus(2)
        }
        let (level, format) = try LogSetup.parse(level: logLevel, format: logFormat, config: loaded.log)
        let logger = LogSetup.bootstrap(level: level, format: format)
        let tlsProblems = TLSContexts.problems(in: loaded)
        guard tlsProblems.isEmpty else {
            for problem in tlsProblems { printError("ferry: invalid configuration: \(problem)") }
            throw ExitStatus(2)
        }
        // Signals are taken over before any listener is bound: a SIGHUP or SIGTERM that comes
        // while starting waits in the stream (by default SIGHUP would end the process).
        let (events, continuation) = AsyncStream.makeStream(of: ControlEvent.self)
        Signals.events(into: continuation)
        let loops = loaded.runtime.eventLoops ?? System.coreCount
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let server = FerryServer(config: loaded, group: group, logger: logger)
        if let xds = loaded.xds { server.holdReadiness(XDSRunner.notReadyReason(xds)) }
        do {
            try await server.start()
        } catch {
            printError("ferry: cannot start: \(error)")
            try? await group.shutdownGracefully()
            throw ExitStatus(1)
        }
        logger.info("ferry started", metadata: ["version": "\(FerryBuild.version)", "config": "\(config)", "event_loops": "\(loops)"])

        var xds: XDSRunner?
        if let xdsConfig = loaded.xds {
            do {
                xds = try await XDSRunner.start(file: loaded, xds: xdsConfig, server: server, logger: logger)
            } catch {
                printError("ferry: cannot start the xDS client: \(error)")
                await server.shutdown(drainTimeout: .zero)
                try? await group.shutdownGracefully()
                throw ExitStatus(1)
            }
        }
        let watcher = loaded.runtime.watchConfig ? ConfigFileWatcher(path: config, initial: text, events: continuation) : nil
        var reloader = Reloader(path: config, server: server, logger: logger, lastText: text, xds: xds)
        for await event in events {
            switch event {
            case .reload(let reason):
                await reloader.reload(reason: reason, onlyIfChanged: reason == ConfigFileWatcher.reason)
            case .terminate(let signal):
                watcher?.stop()
                await xds?.stop()
                logger.info("draining", metadata: ["signal": "\(signal)"])
                let drainTimeout = await server.config.runtime.drainTimeout
                await server.shutdown(drainTimeout: .nanoseconds(drainTimeout.totalNanoseconds))
                try? await group.shutdownGracefully()
                return
            }
        }
    }
}

/// Reads, validates and applies the configuration file again. A file that does not parse or
/// validate, or a listener that cannot be bound, leaves the running configuration serving.
struct Reloader {
    let path: String
    let server: FerryServer
    let logger: Logger
    var lastText: [UInt8]?
    /// The control plane's part of the configuration, when `xds:` is set.
    let xds: XDSRunner?

    /// `onlyIfChanged`: skip when the file holds what was last read (a watcher's event for a
    /// change a SIGHUP already applied).
    mutating func reload(reason: String, onlyIfChanged: Bool = false) async {
        let text = try? TextFile.bytes(path)
        if onlyIfChanged && text == lastText { return }
        lastText = text
        do {
            let config: FerryConfig
            do {
                config = try ConfigLoader.load(path: path)
            } catch {
                server.recordRejectedReload()
                throw error
            }
            let composed = await xds?.compose(file: config) ?? config
            let changes = await server.changes(to: composed)
            try await server.reload(composed)
            logger.info("configuration reloaded", metadata: ["reason": "\(reason)", "config": "\(path)",
                                                             "listeners": "\(config.listeners.count)", "services": "\(config.services.count)",
                                                             "changed": "\(changes.isEmpty ? "nothing" : changes.joined(separator: "; "))"])
        } catch let error as ConfigError {
            logger.error("configuration rejected; the running one stays", metadata: ["reason": "\(reason)", "error": "\(error)"])
        } catch {
            logger.error("configuration could not be applied; the running one stays", metadata: ["reason": "\(reason)", "error": "\(error)"])
        }
    }
}

/// Checks the configuration file once a second and asks for a reload when its bytes change
/// (whether edited in place or replaced by a rename).
final class ConfigFileWatcher: Sendable {
    static let reason = "file changed"
    private let task: Task<Void, Never>

    init(path: String, initial: [UInt8]?, events: AsyncStream<ControlEvent>.Continuation) {
        task = Task {
            var last = initial
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(1)) } catch { return }
                let now = try? TextFile.bytes(path)
                if now != last, now != nil {
                    last = now
                    events.yield(.reload(reason: Self.reason))
                }
            }
        }
    }

    func stop() { task.cancel() }
}

struct Check: FerryCommand {
    static let spec = CommandSpec(
        words: ["check"], abstract: "Validate a configuration file and print the routing table it sets up.",
        arguments: [("file", "Path of the YAML configuration.")])

    let file: String

    init(_ arguments: ParsedArguments) { file = arguments.argument(0) }

    /// Every problem in the file (each section, service and listener checked on its own),
    /// then what can be checked offline of a valid one: TLS files, endpoints files.
    func run() throws {
        let (checked, errors) = ConfigLoader.check(path: file)
        guard let config = checked else {
            for error in errors { printError("\(error)") }
            if errors.count > 1 { printError("\(file): \(errors.count) errors") }
            throw ExitStatus(1)
        }
        let problems = TLSContexts.problems(in: config).map { "\($0)" } + Self.endpointFileProblems(in: config)
        guard problems.isEmpty else {
            for problem in problems { printError("\(problem)") }
            throw ExitStatus(1)
        }
        print("\(file): OK")
        for line in ConfigSummary.lines(config) { print(line) }
    }
}

extension Check {
    /// What `run` would only log: an endpoints file (file discovery) that is missing or does not
    /// parse. Running, Ferry keeps the last good endpoints and reads the file again; checking,
    /// before any run, there are none to keep.
    static func endpointFileProblems(in config: FerryConfig) -> [String] {
        config.services.compactMap { service in
            guard case .file(let discovery) = service.discovery else { return nil }
            do {
                _ = try EndpointsFile.load(path: discovery.path)
                return nil
            } catch let error as ConfigError {
                return "\(error) (the endpoints file of service \"\(service.name)\")"
            } catch {
                return "\(discovery.path): \(error) (the endpoints file of service \"\(service.name)\")"
            }
        }
    }
}

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
