#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A command `ferry` runs: parsed from the command line by its `spec`, then run.
protocol FerryCommand: Sendable {
    static var spec: CommandSpec { get }
    init(_ arguments: ParsedArguments) throws(UsageError)
    func run() async throws
}

import FerryProxy

@main
enum Ferry {
    static let abstract = "A gRPC- and HTTP/2-aware service-mesh proxy."
    static let commands: [any FerryCommand.Type] = [Run.self, Check.self, Demo.self, Record.self, FixtureShow.self]

    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["--version"] || arguments == ["version"] {
            print("ferry \(FerryBuild.version)")
            exit(0)
        }
        if arguments.isEmpty || arguments == ["--help"] || arguments == ["-h"] || arguments == ["help"] {
            print(overview)
            exit(arguments.isEmpty ? 64 : 0)
        }
        // The command whose words the arguments start with (the longest such: "fixture show").
        let match = commands
            .filter { arguments.starts(with: $0.spec.words) }
            .max { $0.spec.words.count < $1.spec.words.count }
        guard let command = match else {
            printError("Error: unknown command '\(arguments[0])'\n\n\(overview)")
            exit(64)
        }
        let spec = command.spec
        do {
            guard let parsed = try ParsedArguments(Array(arguments.dropFirst(spec.words.count)), spec: spec) else {
                print(spec.help)
                exit(0)
            }
            try await command.init(parsed).run()
            exit(0)
        } catch let error as UsageError {
            printError("Error: \(error)\nUsage: \(spec.usage)\n  See 'ferry \(spec.name) --help' for more information.")
            exit(64)
        } catch let error as ExitStatus {
            exit(error.status)
        } catch {
            printError("Error: \(error)")
            exit(1)
        }
    }

    static var overview: String {
        var lines = ["OVERVIEW: \(abstract)", "", "USAGE: ferry <command> [options]", "       ferry --version", "", "COMMANDS:"]
        for command in commands { lines.append("  " + command.spec.name.padded(to: 16) + command.spec.abstract) }
        lines += ["", "  See 'ferry <command> --help' for a command's options."]
        return lines.joined(separator: "\n")
    }
}
