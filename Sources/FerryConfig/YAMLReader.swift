/// A YAML node with the key path that led to it, so every error can name file, line, column and key.
struct YAMLValue {
    let node: YAMLNode
    let path: String
    let file: String

    func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: node.line, column: node.column, key: path, message: message)
    }

    func child(_ node: YAMLNode, key: String) -> YAMLValue {
        YAMLValue(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// The entries of a mapping; a key outside `allowed` is an error (typos are caught, not ignored).
    func mapping(allowed: [String]) throws -> YAMLMapping {
        guard case .mapping(let mapping) = node.content else { throw error("expected a mapping") }
        var entries: [(String, YAMLValue)] = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let key) = keyNode.content else { throw child(keyNode, key: "?").error("keys must be plain strings") }
            let keyValue = child(keyNode, key: key)
            guard allowed.contains(key) else {
                let hint = allowed.min(by: { editDistance($0, key) < editDistance($1, key) })
                    .flatMap { editDistance($0, key) <= 2 ? " (did you mean \"\($0)\"?)" : nil } ?? ""
                throw keyValue.error("unknown key \"\(key)\"\(hint); allowed here: \(allowed.joined(separator: ", "))")
            }
            if entries.contains(where: { $0.0 == key }) { throw keyValue.error("key \"\(key)\" appears twice") }
            entries.append((key, child(valueNode, key: key)))
        }
        return YAMLMapping(owner: self, entries: entries)
    }

    /// As `mapping(allowed:)`, but an unknown or repeated key is added to `errors` and skipped.
    func mapping(allowed: [String], errors: inout [ConfigError]) throws -> YAMLMapping {
        guard case .mapping(let mapping) = node.content else { throw error("expected a mapping") }
        var kept: [(String, YAMLValue)] = []
        for (keyNode, valueNode) in mapping {
            let single = YAMLValue(node: YAMLNode(content: .mapping([(keyNode, valueNode)]), line: node.line, column: node.column),
                                   path: path, file: file)
            do {
                let entry = try single.mapping(allowed: allowed).entries[0]
                if kept.contains(where: { $0.0 == entry.0 }) {
                    errors.append(entry.1.error("key \"\(entry.0)\" appears twice"))
                    continue
                }
                kept.append(entry)
            } catch let error as ConfigError {
                errors.append(error)
            }
        }
        return YAMLMapping(owner: self, entries: kept)
    }

    func sequence() throws -> [YAMLValue] {
        guard case .sequence(let sequence) = node.content else { throw error("expected a list") }
        return sequence.enumerated().map { i, item in
            YAMLValue(node: item, path: "\(path)[\(i)]", file: file)
        }
    }

    func string() throws -> String {
        guard case .scalar(let text) = node.content else { throw error("expected a single value") }
        return text
    }

    func bool() throws -> Bool {
        switch try string() {
        case "true": return true
        case "false": return false
        case let other: throw error("expected true or false, got \"\(other)\"")
        }
    }

    func int(in range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(try string()) else { throw error("expected a whole number") }
        guard range.contains(n) else { throw error("must be from \(range.lowerBound) to \(range.upperBound), got \(n)") }
        return n
    }

    func duration(min: Duration = .zero, max: Duration = .seconds(86_400)) throws -> Duration {
        switch ConfigValues.parseDuration(try string()) {
        case .success(let d):
            guard d >= min && d <= max else { throw error("must be from \(min) to \(max), got \(d)") }
            return d
        case .failure(let why): throw error(why.description)
        }
    }

    func size(in range: ClosedRange<Int>) throws -> Int {
        switch ConfigValues.parseSize(try string()) {
        case .success(let n):
            guard range.contains(n) else { throw error("must be from \(range.lowerBound) to \(range.upperBound) bytes, got \(n)") }
            return n
        case .failure(let why): throw error(why.description)
        }
    }

    func hostPort() throws -> HostPort {
        switch HostPort.parse(try string()) {
        case .success(let hp): return hp
        case .failure(let why): throw error(why.description)
        }
    }
}

struct YAMLMapping {
    let owner: YAMLValue
    let entries: [(String, YAMLValue)]

    subscript(_ key: String) -> YAMLValue? { entries.first { $0.0 == key }?.1 }

    func required(_ key: String) throws -> YAMLValue {
        guard let value = self[key] else { throw owner.error("missing required key \"\(key)\"") }
        return value
    }
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
