#if canImport(Glibc)
import Glibc
#endif
/// A host and port as written in the configuration (`127.0.0.1:4140`, `[::1]:80`, `localhost:8080`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6-address]:port`; returns a reason on failure.
    public static func parse(_ text: String) -> Result<HostPort, ConfigValueError> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .fail("missing ']' in \"\(text)\"") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .fail("expected ':port' after ']' in \"\(text)\"") }
            portText = rest.dropFirst()
        } else {
            if let scheme = text.firstRange(of: "://") {
                let address = text[scheme.upperBound...].split(separator: "/").first.map(String.init) ?? ""
                return .fail("an address is host:port, with no scheme: write \"\(address)\" for \"\(text)\"")
            }
            guard let colon = text.lastIndex(of: ":") else { return .fail("expected host:port, got \"\(text)\"") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .fail("an IPv6 address needs brackets: \"[\(host)]:\(portText)\"") }
        }
        guard !host.isEmpty else { return .fail("empty host in \"\(text)\"") }
        guard let port = Int(portText), (1...65535).contains(port) else {
            return .fail("port must be a number from 1 to 65535, got \"\(portText)\"")
        }
        if let why = hostProblem(String(host), bracketed: text.hasPrefix("["), port: port) { return .fail(why) }
        return .success(HostPort(host: String(host), port: port))
    }

    /// Why `host` can be neither an IP address nor a hostname, or nil when it can.
    private static func hostProblem(_ host: String, bracketed: Bool, port: Int) -> String? {
        if bracketed {
            var address = in6_addr()
            return inet_pton(AF_INET6, host, &address) == 1 ? nil : "\"\(host)\" in brackets is not an IPv6 address"
        }
        if host == "*" {
            return "\"*\" is not an address: listen on 0.0.0.0:\(port) for every IPv4 address, or [::]:\(port) for every IPv6 and IPv4 one"
        }
        if host.allSatisfy({ $0.isNumber || $0 == "." }) {
            var address = in_addr()
            guard inet_pton(AF_INET, host, &address) == 1 else {
                return "\"\(host)\" is not an IPv4 address (four numbers from 0 to 255, such as 10.0.0.1)"
            }
            return nil
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let valid = host.utf8.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
        }
        return valid ? nil : "\"\(host)\" is not a hostname (letters, digits and '-' in dot-separated labels) nor an IP address"
    }

    public var description: String { host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public enum ConfigValues {
    /// Parses durations like `300ms`, `2s`, `1m`, `1h`, `250us`, `1.5s`; a bare number is refused
    /// (a unit is always required, to avoid seconds/milliseconds mix-ups).
    public static func parseDuration(_ text: String) -> Result<Duration, ConfigValueError> {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard let value = Double(number), value >= 0, value.isFinite, !number.hasPrefix("+") else {
                return .fail("expected a duration like 300ms or 2s, got \"\(text)\"")
            }
            return .success(.nanoseconds(Int64((value * scale * 1e9).rounded())))
        }
        return .fail("expected a duration with a unit (ns, us, ms, s, m, h), got \"\(text)\"")
    }

    /// Parses byte sizes: `65536`, `64KiB`, `1MiB`, `16KB` (KB means 1000).
    public static func parseSize(_ text: String) -> Result<Int, ConfigValueError> {
        let units: [(String, Int)] = [("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024),
                                      ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let n = Int(text.dropLast(suffix.count)), n >= 0 else { break }
            return .success(n * scale)
        }
        if let n = Int(text), n >= 0 { return .success(n) }
        return .fail("expected a size like 65536, 64KiB or 1MiB, got \"\(text)\"")
    }
}

/// Why a configuration value did not parse (the caller adds file, line and key).
public struct ConfigValueError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension Result where Failure == ConfigValueError {
    static func fail(_ why: String) -> Result { .failure(ConfigValueError(why)) }
}

extension Duration {
    /// The whole duration in nanoseconds (what NIO's `TimeAmount` takes).
    public var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
