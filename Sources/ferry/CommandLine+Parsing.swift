#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ferry's command line, parsed here rather than with a library: ArgumentParser brought
/// FoundationEssentials, and with it about a megabyte of resident size to every proxy.
///
/// `ferry <command> [--option value | --option=value | -o value | --flag]... [argument]...`;
/// `--help` on any command prints its usage.

/// An option or flag a command accepts.
struct OptionSpec: Sendable {
    let long: String
    var short: Character? = nil
    /// The value's name in the usage text; nil for a flag.
    var value: String? = nil
    var defaultValue: String? = nil
    var required = false
    var repeatable = false
    let help: String
}

/// A command: its words (`["fixture", "show"]`), summary, options and positional arguments.
struct CommandSpec: Sendable {
    let words: [String]
    let abstract: String
    var discussion: String? = nil
    var options: [OptionSpec] = []
    /// Positional arguments, each required: (name, help).
    var arguments: [(name: String, help: String)] = []

    var name: String { words.joined(separator: " ") }

    var usage: String {
        var parts = ["ferry", name]
        for option in options where option.required {
            parts.append(option.value.map { "--\(option.long) <\($0)>" } ?? "--\(option.long)")
        }
        if options.contains(where: { !$0.required }) { parts.append("[options]") }
        parts += arguments.map { "<\($0.name)>" }
        return parts.joined(separator: " ")
    }

    var help: String {
        var lines = ["OVERVIEW: \(abstract)"]
        if let discussion { lines += ["", discussion] }
        lines += ["", "USAGE: \(usage)"]
        if !arguments.isEmpty {
            lines += ["", "ARGUMENTS:"] + arguments.map { "  <\($0.name)>".padded(to: 28) + $0.help }
        }
        lines += ["", "OPTIONS:"]
        for option in options {
            var flag = option.short.map { "-\($0), --\(option.long)" } ?? "--\(option.long)"
            if let value = option.value { flag += " <\(value)>" }
            var help = option.help
            if let defaultValue = option.defaultValue { help += " (default: \(defaultValue))" }
            if option.repeatable { help += " (repeatable)" }
            lines.append("  " + flag.padded(to: 26) + help)
        }
        lines.append("  " + "-h, --help".padded(to: 26) + "Show this help.")
        return lines.joined(separator: "\n")
    }
}

/// A mistake on the command line: reported with the command's usage, exit status 64.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Ends the process with `status` (after the command printed why).
struct ExitStatus: Error {
    let status: Int32
    init(_ status: Int32) { self.status = status }
}

/// What the command line said, checked against a `CommandSpec`.
struct ParsedArguments {
    let spec: CommandSpec
    private(set) var values: [String: [String]] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positional: [String] = []

    /// Parses `arguments` (after the command's words). Returns nil when `--help` was asked for.
    init?(_ arguments: [String], spec: CommandSpec) throws(UsageError) {
        self.spec = spec
        var rest = arguments[...]
        var optionsEnded = false
        while let argument = rest.popFirst() {
            if optionsEnded || !argument.hasPrefix("-") || argument == "-" {
                positional.append(argument)
                continue
            }
            if argument == "--" { optionsEnded = true; continue }
            if argument == "--help" || argument == "-h" { return nil }
            var name = argument
            var inlineValue: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            guard let option = spec.options.first(where: { name == "--\($0.long)" || ($0.short.map { name == "-\($0)" } ?? false) }) else {
                throw UsageError("unknown option '\(name)'")
            }
            guard option.value != nil else {
                if inlineValue != nil { throw UsageError("--\(option.long) takes no value") }
                flags.insert(option.long)
                continue
            }
            guard let value = inlineValue ?? rest.popFirst() else { throw UsageError("missing value for '\(name)'") }
            if values[option.long] != nil && !option.repeatable { throw UsageError("--\(option.long) given twice") }
            values[option.long, default: []].append(value)
        }
        for option in spec.options where option.required && values[option.long] == nil {
            throw UsageError("missing --\(option.long)")
        }
        if positional.count < spec.arguments.count {
            throw UsageError("missing <\(spec.arguments[positional.count].name)>")
        }
        if positional.count > spec.arguments.count {
            throw UsageError("unexpected argument '\(positional[spec.arguments.count])'")
        }
    }

    /// The option's value, or its default.
    func string(_ long: String) -> String? { values[long]?.last ?? spec.options.first { $0.long == long }?.defaultValue }
    func strings(_ long: String) -> [String] { values[long] ?? [] }
    func flag(_ long: String) -> Bool { flags.contains(long) }
    func argument(_ index: Int) -> String { positional[index] }

    /// A whole number, or nil when the option was not given and has no default.
    func int(_ long: String) throws(UsageError) -> Int? {
        guard let text = string(long) else { return nil }
        guard let n = Int(text) else { throw UsageError("--\(long) takes a whole number, got '\(text)'") }
        return n
    }
}

extension String {
    /// The text left-aligned in a column `width` wide, with at least one space after it.
    func padded(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
