import FerryConfig
import NIOCore

/// A service's endpoints from DNS: the A and/or AAAA records of a name at a configured port,
/// or its SRV records (lowest priority group, each target's addresses at the record's port,
/// the record's weight). The answer's smallest TTL, held within the configured bounds, says
/// when to ask again.
///
/// NXDOMAIN or an empty answer is an answer: the service has no endpoints. A timeout, a
/// SERVFAIL or REFUSED, or a malformed answer is an error: the watcher keeps the last good set.
public struct DNSEndpointSource: EndpointSource {
    public struct ResolutionError: Error, CustomStringConvertible {
        public let description: String
    }

    public let config: DNSDiscoveryConfig
    let client: DNSClient

    public init(_ config: DNSDiscoveryConfig, client: DNSClient) {
        self.config = config
        self.client = client
    }

    public var description: String { "DNS \(config.recordType.rawValue) \(config.name)" }

    public func read() async throws -> EndpointSnapshot {
        let server = try serverAddress()
        var ttl = UInt32.max
        var endpoints: [Endpoint] = []
        switch config.recordType {
        case .a, .aaaa, .addresses:
            let (addresses, addressTTL) = try await addresses(of: config.name, types: addressTypes, server: server)
            ttl = min(ttl, addressTTL)
            endpoints = addresses.map { Endpoint(host: $0, port: config.port ?? 0) }
        case .srv:
            let response = try await ask(config.name, .srv, server: server)
            var targets: [(priority: UInt16, weight: UInt16, port: UInt16, target: String, ttl: UInt32)] = []
            for record in response.answers {
                if case .srv(let priority, let weight, let port, let target) = record.data, port > 0, !target.isEmpty {
                    targets.append((priority, weight, port, target, record.ttl))
                }
            }
            if let best = targets.map(\.priority).min() {
                for target in targets where target.priority == best {
                    ttl = min(ttl, target.ttl)
                    let glue = response.additionals.filter { $0.name == target.target }
                    let addresses: [String]
                    if !glue.isEmpty {
                        addresses = glue.compactMap { if case .address(let a) = $0.data { return a } else { return nil } }
                        ttl = min(ttl, glue.map(\.ttl).min() ?? ttl)
                    } else {
                        let (found, foundTTL) = try await self.addresses(of: target.target, types: [.a, .aaaa], server: server)
                        addresses = found
                        ttl = min(ttl, foundTTL)
                    }
                    for address in addresses where !endpoints.contains(where: { $0.host == address && $0.port == Int(target.port) }) {
                        endpoints.append(Endpoint(host: address, port: Int(target.port), weight: max(1, Int(target.weight))))
                    }
                }
            }
        }
        let refresh = ttl == .max ? config.minTTL : min(max(Duration.seconds(Int64(ttl)), config.minTTL), config.maxTTL)
        var snapshot = EndpointSnapshot(endpoints: endpoints, refreshAfter: refresh)
        if endpoints.isEmpty { snapshot.emptyBecause = await emptyAnswer(server: server) }
        return snapshot
    }

    /// What the resolver said of the name when it gave no endpoint: `127.0.0.1:53 answered
    /// x.test A with NXDOMAIN` (or `with no records`), asked again for the first type.
    private func emptyAnswer(server: SocketAddress) async -> String {
        let type: DNSRecordType = config.recordType == .srv ? .srv : addressTypes[0]
        let types = config.recordType == .addresses ? "A+AAAA" : "\(type)".uppercased()
        let rcode = (try? await client.query(name: config.name, type: type, server: server,
                                             timeout: .nanoseconds(config.queryTimeout.totalNanoseconds)))?.rcode
        let said = rcode == 3 ? "NXDOMAIN" : "no usable records"
        return "\(DNSClient.describe(server)) answered \(config.name) \(types) with \(said)"
    }

    private var addressTypes: [DNSRecordType] {
        switch config.recordType {
        case .a: return [.a]
        case .aaaa: return [.aaaa]
        case .addresses, .srv: return [.a, .aaaa]
        }
    }

    private func addresses(of name: String, types: [DNSRecordType], server: SocketAddress) async throws -> ([String], UInt32) {
        var addresses: [String] = []
        var ttl = UInt32.max
        for type in types {
            let response = try await ask(name, type, server: server)
            for record in response.answers {
                guard case .address(let address) = record.data else { continue }
                // Only the family asked for (a CNAME chain's other records are skipped).
                guard (type == .a) == !address.contains(":") else { continue }
                if !addresses.contains(address) { addresses.append(address) }
                ttl = min(ttl, record.ttl)
            }
        }
        return (addresses, ttl)
    }

    /// One question, tried up to three times on timeouts; NXDOMAIN reads as an empty answer.
    private func ask(_ name: String, _ type: DNSRecordType, server: SocketAddress) async throws -> DNSResponse {
        var lastError: Error = ResolutionError(description: "no attempt made")
        let timeout = TimeAmount.nanoseconds(config.queryTimeout.totalNanoseconds)
        for _ in 0..<3 {
            do {
                let response = try await client.query(name: name, type: type, server: server, timeout: timeout)
                switch response.rcode {
                case 0, 3:
                    return response.rcode == 3 ? DNSResponse(id: response.id, rcode: 3, truncated: false, answers: [], additionals: []) : response
                default:
                    throw ResolutionError(description: "\(DNSClient.describe(server)) answered \(name) \("\(type)".uppercased()) with \(Self.rcodeName(response.rcode))")
                }
            } catch let error as DNSClient.QueryError {
                lastError = error
            } catch let error as ResolutionError {
                throw error
            } catch {
                // The socket failed (e.g. ICMP port unreachable: nothing listens there).
                lastError = ResolutionError(description: "query to \(DNSClient.describe(server)) failed: \(error)")
            }
        }
        throw lastError
    }

    static func rcodeName(_ rcode: UInt8) -> String {
        switch rcode {
        case 1: return "FORMERR"
        case 2: return "SERVFAIL"
        case 4: return "NOTIMP"
        case 5: return "REFUSED"
        default: return "rcode \(rcode)"
        }
    }

    private func serverAddress() throws -> SocketAddress {
        let server = config.resolver ?? ResolvConf.firstNameserver() ?? HostPort(host: "127.0.0.1", port: 53)
        do {
            return try SocketAddress(ipAddress: server.host, port: server.port)
        } catch {
            throw ResolutionError(description: "the resolver address \(server) is not an IP address")
        }
    }
}

/// The system resolver's first `nameserver` line.
enum ResolvConf {
    static func firstNameserver(path: String = "/etc/resolv.conf") -> HostPort? {
        guard let text = try? TextFile.read(path) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0] == "nameserver" { return HostPort(host: String(fields[1]), port: 53) }
        }
        return nil
    }
}
