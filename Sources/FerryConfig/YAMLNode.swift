import CYAML

/// A YAML node as the configuration reader needs it: a scalar's text, a mapping's entries in
/// the order written, a sequence's items; each with the line and column (from 1) it starts at,
/// so errors can point at it. Tags are not interpreted: every scalar is text, and the reader
/// decides what text a field accepts.
struct YAMLNode {
    enum Content {
        case scalar(String)
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }

    let content: Content
    let line: Int
    let column: Int
}

/// A YAML syntax error from libyaml, with where it was found (line and column from 1).
struct YAMLSyntaxError: Error {
    let problem: String
    let line: Int
    let column: Int
}

/// Builds the node tree of a single YAML document from libyaml's parser events. Anchors and
/// aliases are resolved (an alias is a copy of the anchored node); a second document is an error.
enum YAMLComposer {
    /// The document's root node, or nil when the text holds no document (empty or only comments).
    static func compose(_ text: String) throws(YAMLSyntaxError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(problem: "cannot start the YAML parser (out of memory)", line: 0, column: 0)
        }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return nil }
        return try bytes.withUnsafeMutableBufferPointer { (input) throws(YAMLSyntaxError) -> YAMLNode? in
            yaml_parser_set_input_string(&parser, input.baseAddress, input.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            var builder = Builder()
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.syntaxError(parser) }
                defer { yaml_event_delete(&event) }
                if try builder.take(event) { return builder.root }
            }
        }
    }

    private static func syntaxError(_ parser: yaml_parser_t) -> YAMLSyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
        let context = parser.context.map { String(cString: $0) }
        // libyaml's marks count from 0.
        let mark = parser.problem_mark
        return YAMLSyntaxError(problem: context.map { "\(problem) \($0)" } ?? problem,
                               line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    /// The containers open while events arrive, innermost last.
    private struct Builder {
        private enum Open {
            case mapping(entries: [(key: YAMLNode, value: YAMLNode)], key: YAMLNode?, anchor: String?, line: Int, column: Int)
            case sequence(items: [YAMLNode], anchor: String?, line: Int, column: Int)
        }

        private var open: [Open] = []
        private var anchors: [String: YAMLNode] = [:]
        private var documents = 0
        private(set) var root: YAMLNode?

        /// Takes one event; true at the end of the stream.
        mutating func take(_ event: yaml_event_t) throws(YAMLSyntaxError) -> Bool {
            let line = Int(event.start_mark.line) + 1
            let column = Int(event.start_mark.column) + 1
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return true
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 {
                    throw YAMLSyntaxError(problem: "a second YAML document: the file must hold one", line: line, column: column)
                }
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
                try add(YAMLNode(content: .scalar(text), line: line, column: column), anchor: Self.text(scalar.anchor))
            case YAML_ALIAS_EVENT:
                let name = Self.text(event.data.alias.anchor) ?? ""
                guard let node = anchors[name] else {
                    throw YAMLSyntaxError(problem: "alias *\(name) names no anchor before it", line: line, column: column)
                }
                try add(node, anchor: nil)
            case YAML_SEQUENCE_START_EVENT:
                open.append(.sequence(items: [], anchor: Self.text(event.data.sequence_start.anchor), line: line, column: column))
            case YAML_MAPPING_START_EVENT:
                open.append(.mapping(entries: [], key: nil, anchor: Self.text(event.data.mapping_start.anchor),
                                     line: line, column: column))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = open.popLast() else { break }
                switch closed {
                case .sequence(let items, let anchor, let line, let column):
                    try add(YAMLNode(content: .sequence(items), line: line, column: column), anchor: anchor)
                case .mapping(let entries, _, let anchor, let line, let column):
                    try add(YAMLNode(content: .mapping(entries), line: line, column: column), anchor: anchor)
                }
            default:
                break                                    // stream start, document end: nothing to build
            }
            return false
        }

        private mutating func add(_ node: YAMLNode, anchor: String?) throws(YAMLSyntaxError) {
            if let anchor { anchors[anchor] = node }
            guard let innermost = open.popLast() else {
                root = node
                return
            }
            switch innermost {
            case .sequence(var items, let anchor, let line, let column):
                items.append(node)
                open.append(.sequence(items: items, anchor: anchor, line: line, column: column))
            case .mapping(var entries, let key, let anchor, let line, let column):
                if let key {
                    entries.append((key: key, value: node))
                    open.append(.mapping(entries: entries, key: nil, anchor: anchor, line: line, column: column))
                } else {
                    open.append(.mapping(entries: entries, key: node, anchor: anchor, line: line, column: column))
                }
            }
        }

        private static func text(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            pointer.map { String(cString: $0) }
        }
    }
}
