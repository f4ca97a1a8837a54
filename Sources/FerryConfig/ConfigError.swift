/// A configuration problem, located precisely: the file, the line and column of the offending
/// node, and the key path that leads to it (`services.greeter.endpoints[1]`).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var key: String
    public var message: String

    public init(file: String, line: Int, column: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String {
        let location = line > 0 ? "\(file):\(line):\(column)" : file
        return key.isEmpty ? "\(location): \(message)" : "\(location): \(key): \(message)"
    }
}
