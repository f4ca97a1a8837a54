// Runs gRPC interop cases against a server, printing one line per case:
//   PASS <case> <seconds>   or   FAIL <case> <seconds> <reason>
// Usage: InteropClientSwift --port N [--host 127.0.0.1] [--case NAME ...]   (default: every case)
// Exit code: 0 when every case passed, 1 otherwise, 2 for bad arguments.
import Foundation

var host = "127.0.0.1"
var port: Int?
var selected: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--host": host = arguments.popFirst() ?? host
    case "--port": port = arguments.popFirst().flatMap { Int($0) }
    case "--case": if let name = arguments.popFirst() { selected.append(name) }
    default:
        print("unknown argument \(argument)")
        exit(2)
    }
}
guard let port else {
    print("usage: InteropClientSwift --port N [--host H] [--case NAME ...]")
    exit(2)
}

let cases = InteropCases(host: host, port: port)
var failures = 0
for name in selected.isEmpty ? InteropCases.names : selected {
    let clock = ContinuousClock()
    let start = clock.now
    func elapsed() -> String {
        let (seconds, attoseconds) = (clock.now - start).components
        return String(format: "%.2fs", Double(seconds) + Double(attoseconds) / 1e18)
    }
    do {
        try await cases.run(name)
        print("PASS \(name) \(elapsed())")
    } catch {
        failures += 1
        print("FAIL \(name) \(elapsed()) \(String(describing: error).replacingOccurrences(of: "\n", with: " "))")
    }
}
exit(failures == 0 ? 0 : 1)
