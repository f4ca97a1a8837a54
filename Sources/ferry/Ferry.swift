import ArgumentParser

@main
struct Ferry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "A gRPC- and HTTP/2-aware service-mesh proxy.",
        subcommands: [Run.self, Check.self, Demo.self, Record.self, FixtureCommand.self]
    )
}
