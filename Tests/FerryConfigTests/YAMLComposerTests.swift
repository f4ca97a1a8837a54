@testable import FerryConfig
import XCTest

/// The libyaml-backed node tree the configuration reader walks.
final class YAMLComposerTests: XCTestCase {
    private func compose(_ text: String) throws(YAMLSyntaxError) -> YAMLNode? { try YAMLComposer.compose(text) }

    private func scalar(_ node: YAMLNode?) -> String? {
        if case .scalar(let text)? = node?.content { return text }
        return nil
    }

    func testMappingsKeepTheirOrderAndEveryNodeItsPosition() throws {
        let root = try XCTUnwrap(try compose("b: 1\na:\n  - x\n  - {k: 'quoted: yes'}\n"))
        guard case .mapping(let entries) = root.content else { return XCTFail("not a mapping") }
        XCTAssertEqual(entries.map { scalar($0.key) }, ["b", "a"])
        XCTAssertEqual(scalar(entries[0].value), "1", "scalars stay text; the reader decides what a field accepts")
        guard case .sequence(let items) = entries[1].value.content else { return XCTFail("not a list") }
        XCTAssertEqual(items[0].line, 3)
        XCTAssertEqual(items[0].column, 5)
        guard case .mapping(let inner) = items[1].content else { return XCTFail("not a mapping") }
        XCTAssertEqual(scalar(inner[0].value), "quoted: yes")
        XCTAssertEqual(inner[0].key.line, 4)
        XCTAssertEqual(inner[0].key.column, 6)
    }

    func testJSONIsYAML() throws {
        let root = try XCTUnwrap(try compose(#"{"endpoints": ["10.0.0.1:80", {"address": "10.0.0.2:80", "weight": 2}]}"#))
        guard case .mapping(let entries) = root.content, case .sequence(let list) = entries[0].value.content else {
            return XCTFail("unexpected shape")
        }
        XCTAssertEqual(list.count, 2)
    }

    func testAnchorsAndAliases() throws {
        let root = try XCTUnwrap(try compose("base: &retry {attempts: 3}\nother: *retry\n"))
        guard case .mapping(let entries) = root.content, case .mapping(let copied) = entries[1].value.content else {
            return XCTFail("unexpected shape")
        }
        XCTAssertEqual(scalar(copied[0].value), "3")
        XCTAssertThrowsError(try compose("a: *missing\n"))
    }

    func testEmptyTextAndCommentsHoldNoDocument() throws {
        XCTAssertNil(try compose(""))
        XCTAssertNil(try compose("# nothing here\n"))
    }

    func testSyntaxErrorsAndSecondDocumentsSayWhere() {
        do {
            _ = try compose("listeners:\n  - name: [unclosed\n")
            XCTFail("accepted broken YAML")
        } catch {
            XCTAssertEqual(error.line, 3)
            XCTAssertFalse(error.problem.isEmpty)
        }
        do {
            _ = try compose("a: 1\n---\nb: 2\n")
            XCTFail("accepted two documents")
        } catch {
            XCTAssertEqual(error.line, 2)
            XCTAssertTrue(error.problem.contains("second YAML document"), error.problem)
        }
    }
}
