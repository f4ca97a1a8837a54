import FerryConfig

/// The resources Ferry holds from its control plane, by type and name, and the checks that
/// decide whether a response may join them. Pure: the client decodes a response here
/// (`stage`), gives the state machine the verdict, and on its `.apply` action `commit`s what
/// was staged; nothing staged is kept when the response is NACKed.
public struct XDSResourceCache: Sendable {
    public private(set) var listeners: [String: XDSListener] = [:]
    public private(set) var routeTables: [String: XDSRouteTable] = [:]
    public private(set) var clusters: [String: XDSCluster] = [:]
    public private(set) var assignments: [String: XDSEndpointAssignment] = [:]
    /// The version of each type last accepted.
    public private(set) var versions: [XDSResourceType: String] = [:]
    /// Names known not to exist (removed, or not sent within the resource timeout).
    public private(set) var missing: [XDSResourceType: Set<String>] = [:]

    /// What the file defines, which xDS may not take over: a resource with one of these names
    /// (or a listener on one of these addresses: the file's listeners and admin server) is refused.
    public var fileListenerNames: Set<String> = []
    public var fileListenerAddresses: Set<HostPort> = []
    public var fileServiceNames: Set<String> = []
    public var limits = XDSEndpointAssignment.Limits()

    public init() {}

    /// A response decoded and checked, waiting for the state machine's verdict.
    public struct Staged: Sendable {
        /// What the state machine is told.
        public var response: ADSResponse
        /// What each accepted resource set that Ferry leaves aside, for one log line.
        public var ignored: [String] = []
        /// The certificate, key and bundle files the resources name, by resource (the shell
        /// checks they can be read before the verdict: a reload would fail on them).
        public var tlsFiles: [(resource: String, file: String)] = []
        fileprivate var decoded: Decoded?
    }

    fileprivate enum Decoded: Sendable {
        case listeners([XDSListener])
        case routeTables([XDSRouteTable])
        case clusters([XDSCluster])
        case assignments([XDSEndpointAssignment])
    }

    /// Decodes every resource of `response` and checks it against what is held; problems are
    /// named by resource and field, for the NACK's `error_detail`.
    public func stage(_ response: XDSDiscoveryResponse) -> Staged {
        var staged = Staged(response: ADSResponse(typeURL: response.typeURL, versionInfo: response.versionInfo,
                                                  nonce: response.nonce, resourceNames: []))
        guard let type = XDSResourceType(rawValue: response.typeURL) else { return staged }
        var problems: [String] = []
        var names: [String] = []
        var listeners: [XDSListener] = [], tables: [XDSRouteTable] = [], clusters: [XDSCluster] = []
        var assignments: [XDSEndpointAssignment] = []
        for (index, resource) in response.resources.enumerated() {
            let label = (resource.name ?? Self.peekName(resource.bytes)).map { "\"\($0.prefix(200))\"" } ?? "resources[\(index)]"
            guard resource.typeURL == response.typeURL else {
                problems.append("\(label): is a \(resource.typeURL.prefix(200)) in a response of \(type.shortName)")
                continue
            }
            let decoded: Result<String, XDSProblem>
            switch type {
            case .listener:
                decoded = XDSListener.decode(resource.bytes).map { listeners.append($0); return $0.name }
            case .routeConfiguration:
                decoded = XDSRouteTable.decode(resource.bytes).map { tables.append($0); return $0.name }
            case .cluster:
                decoded = XDSCluster.decode(resource.bytes, limits: limits).map { clusters.append($0); return $0.service.name }
            case .clusterLoadAssignment:
                decoded = XDSEndpointAssignment.decode(resource.bytes, limits: limits).map { assignments.append($0); return $0.clusterName }
            }
            switch decoded {
            case .success(let name):
                if let wrapped = resource.name, wrapped != name {
                    problems.append("\(label): the Resource wrapper names \"\(wrapped.prefix(200))\", the resource \"\(name.prefix(200))\"")
                }
                names.append(name)
            case .failure(let problem):
                problems.append("\(label): \(problem)")
            }
        }
        problems += listeners.flatMap(check)
        problems += tables.flatMap { check($0, in: "route table \"\($0.name.prefix(200))\"") }
        problems += clusters.compactMap(check)
        staged.response.resourceNames = names
        staged.response.problems = problems
        staged.ignored = listeners.flatMap { l in l.ignored.map { "listener \(l.name): \($0)" } }
            + tables.flatMap { t in t.ignored.map { "route table \(t.name): \($0)" } }
            + clusters.flatMap { c in c.ignored.map { "cluster \(c.service.name): \($0)" } }
        for listener in listeners {
            guard let tls = listener.tls else { continue }
            for file in [tls.identity.certificate, tls.identity.key, tls.clientCA].compactMap({ $0 }) {
                staged.tlsFiles.append(("listener \"\(listener.name.prefix(200))\"", file))
            }
        }
        for cluster in clusters {
            guard let tls = cluster.service.tls else { continue }
            for file in [tls.ca, tls.identity?.certificate, tls.identity?.key].compactMap({ $0 }) {
                staged.tlsFiles.append(("cluster \"\(cluster.service.name.prefix(200))\"", file))
            }
        }
        switch type {
        case .listener: staged.decoded = .listeners(listeners)
        case .routeConfiguration: staged.decoded = .routeTables(tables)
        case .cluster: staged.decoded = .clusters(clusters)
        case .clusterLoadAssignment: staged.decoded = .assignments(assignments)
        }
        return staged
    }

    /// Takes what `staged` decoded, as the state machine's `update` says (and forgets what
    /// it says was removed).
    public mutating func commit(_ staged: Staged, _ update: ADSResourceUpdate) {
        switch staged.decoded {
        case .listeners(let items): for item in items { listeners[item.name] = item }
        case .routeTables(let items): for item in items { routeTables[item.name] = item }
        case .clusters(let items): for item in items { clusters[item.service.name] = item }
        case .assignments(let items): for item in items { assignments[item.clusterName] = item }
        case nil: break
        }
        for name in update.updated { missing[update.type]?.remove(name) }
        remove(update.type, update.removed)
        versions[update.type] = update.versionInfo
    }

    /// Resources known not to exist (removed, or never arrived in time).
    public mutating func remove(_ type: XDSResourceType, _ names: [String]) {
        missing[type, default: []].formUnion(names)
        for name in names {
            switch type {
            case .listener: listeners[name] = nil
            case .routeConfiguration: routeTables[name] = nil
            case .cluster: clusters[name] = nil
            case .clusterLoadAssignment: assignments[name] = nil
            }
        }
    }

    /// Whether the first configuration is whole: listeners and clusters answered, and every
    /// route table and assignment they name arrived or is known not to exist. Until then
    /// Ferry is not ready (Envoy's initial fetch, before its listeners warm).
    public var hasFirstConfiguration: Bool {
        guard versions[.listener] != nil, versions[.cluster] != nil else { return false }
        let tables = missing[.routeConfiguration] ?? [], endpoints = missing[.clusterLoadAssignment] ?? []
        return wantedRouteTables.allSatisfy { routeTables[$0] != nil || tables.contains($0) }
            && wantedAssignments.allSatisfy { assignments[$0] != nil || endpoints.contains($0) }
    }

    /// How many resources of `type` are held.
    public func count(of type: XDSResourceType) -> Int {
        switch type {
        case .listener: listeners.count
        case .routeConfiguration: routeTables.count
        case .cluster: clusters.count
        case .clusterLoadAssignment: assignments.count
        }
    }

    /// The route tables the held listeners name (what RDS is subscribed to).
    public var wantedRouteTables: Set<String> { Set(listeners.values.flatMap(\.routeTableNames)) }

    /// The assignments the held clusters take their endpoints from (what EDS is subscribed to).
    public var wantedAssignments: Set<String> {
        Set(clusters.values.compactMap { if case .eds(let name) = $0.endpoints { return name } else { return nil } })
    }

    /// The name of a resource that may not decode (field 1 of all four types), for the NACK.
    static func peekName(_ bytes: ArraySlice<UInt8>) -> String? {
        var name: String?
        try? ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            if number == 1, name == nil { name = try value.string("name") }
        }
        return name.flatMap { $0.isEmpty ? nil : $0 }
    }

    // MARK: Checks across resources

    private func check(_ listener: XDSListener) -> [String] {
        let label = "listener \"\(listener.name.prefix(200))\""
        var problems: [String] = []
        if fileListenerNames.contains(listener.name) { problems.append("\(label): the file defines a listener of this name") }
        if fileListenerAddresses.contains(listener.address) {
            problems.append("\(label): address: \(listener.address) is taken by the file (a listener or the admin server)")
        }
        if case .inline(let table) = listener.routes { problems += check(table, in: label + " route_config") }
        return problems
    }

    /// Every route's clusters exist, once CDS has answered (a route to a missing cluster would
    /// fail every call it takes).
    private func check(_ table: XDSRouteTable, in label: String) -> [String] {
        guard let version = versions[.cluster] else { return [] }
        var problems: [String] = []
        for (h, host) in table.virtualHosts.enumerated() {
            for (r, route) in host.routes.enumerated() {
                for backend in route.route.backends where clusters[backend.service] == nil && !fileServiceNames.contains(backend.service) {
                    problems.append("\(label): virtual_hosts[\(h)].routes[\(r)]: cluster \"\(backend.service.prefix(200))\" does not exist "
                                    + "(not in CDS version \"\(version.prefix(100))\")")
                }
            }
        }
        return problems
    }

    private func check(_ cluster: XDSCluster) -> String? {
        fileServiceNames.contains(cluster.service.name)
            ? "cluster \"\(cluster.service.name.prefix(200))\": the file defines a service of this name" : nil
    }
}
