import ArgumentParser
import Foundation
import FerryConfig
import FerryProxy
import Logging
import NIOCore
import NIOPosix

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy with a configuration file.")

    @Option(name: .shortAndLong, help: "Path of the YAML configuration.")
    var config: String

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        let logger = LogSetup.bootstrap(level: logLevel)
        let loaded: FerryConfig
        do {
            loaded = try ConfigLoader.load(path: config)
        } catch let error as ConfigError {
            printError("ferry: invalid configuration: \(error)")
            throw ExitCode(2)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loaded.runtime.eventLoops ?? System.coreCount)
        let server = FerryServer(config: loaded, group: group, logger: logger)
        do {
            try await server.start()
        } catch {
            printError("ferry: cannot start: \(error)")
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        logger.info("ferry started", metadata: ["config": "\(config)", "event_loops": "\(loaded.runtime.eventLoops ?? System.coreCount)"])
        let signal = await Signals.waitForTermination()
        logger.info("draining", metadata: ["signal": "\(signal)"])
        await server.shutdown(drainTimeout: .nanoseconds(loaded.runtime.drainTimeout.totalNanoseconds))
        try? await group.shutdownGracefully()
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a configuration file and print what it sets up.")

    @Argument(help: "Path of the YAML configuration.")
    var file: String

    func run() throws {
        do {
            let config = try ConfigLoader.load(path: file)
            print("\(file): OK")
            for listener in config.listeners {
                print("listener \(listener.name) on \(listener.address) -> service \(listener.service)")
            }
            for service in config.services {
                let endpoints = service.endpoints.map { $0.weight == 1 ? "\($0.address)" : "\($0.address) (weight \($0.weight))" }
                print("service \(service.name): \(endpoints.joined(separator: ", "))")
            }
            if let admin = config.admin { print("admin on \(admin.address)") }
        } catch let error as ConfigError {
            printError("\(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
