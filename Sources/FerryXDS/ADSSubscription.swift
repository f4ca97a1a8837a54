/// Which resources of one type a client asks for.
public enum ADSResourceNames: Sendable, Equatable {
    /// Every resource of the type the server has (a wildcard subscription).
    case all
    case named(Set<String>)
}

/// One type's subscription and what the client knows of each resource in it. Kept across
/// streams: a new stream asks for the same resources again, from the last accepted version.
struct ADSSubscription: Sendable, Equatable {
    enum ResourceStatus: Sendable, Equatable {
        /// Asked for and not yet seen. `deadline` is when it counts as missing; nil while no
        /// stream has sent the request since it was asked for (the clock runs only on a stream).
        case awaited(deadline: Int64?)
        case received
        case doesNotExist
    }

    let type: XDSResourceType
    private(set) var names: ADSResourceNames
    var acceptedVersion = ""
    /// For a named subscription, each name asked for; for a wildcard one, each resource held.
    private(set) var resources: [String: ResourceStatus] = [:]

    init(type: XDSResourceType, names: ADSResourceNames) {
        self.type = type
        self.names = names
        if case .named(let set) = names {
            for name in set { resources[name] = .awaited(deadline: nil) }
        }
    }

    /// Sets what is asked for; says whether the request changed (and so must be sent again).
    /// Resources held that are still asked for are kept; the rest are forgotten.
    mutating func change(to newNames: ADSResourceNames) -> Bool {
        guard newNames != names else { return false }
        names = newNames
        switch newNames {
        case .all:
            resources = resources.filter { $0.value == .received }
        case .named(let set):
            resources = resources.filter { set.contains($0.key) }
            for name in set where resources[name] == nil { resources[name] = .awaited(deadline: nil) }
        }
        return true
    }

    /// The names to put in a request: sorted, empty for a wildcard.
    var requestedNames: [String] {
        switch names {
        case .all: []
        case .named(let set): set.sorted()
        }
    }

    func wants(_ name: String) -> Bool {
        switch names {
        case .all: true
        case .named(let set): set.contains(name)
        }
    }

    /// A request for these resources went out at `now`: the awaited ones start their clocks.
    mutating func requestSent(at now: Int64, timeout: Int64) {
        for (name, status) in resources {
            if case .awaited(nil) = status { resources[name] = .awaited(deadline: now + timeout) }
        }
    }

    /// The stream ended: awaited resources stop their clocks until the next stream asks again.
    mutating func pauseClocks() {
        for (name, status) in resources {
            if case .awaited(.some) = status { resources[name] = .awaited(deadline: nil) }
        }
    }

    /// The earliest time an awaited resource counts as missing.
    var earliestDeadline: Int64? {
        var earliest: Int64?
        for case .awaited(let deadline?) in resources.values { earliest = min(earliest ?? deadline, deadline) }
        return earliest
    }

    /// Marks the awaited resources whose time is up as not existing, and returns them (sorted).
    mutating func expire(at now: Int64) -> [String] {
        var expired: [String] = []
        for (name, status) in resources {
            if case .awaited(let deadline?) = status, deadline <= now {
                resources[name] = .doesNotExist
                expired.append(name)
            }
        }
        return expired.sorted()
    }

    /// Takes an accepted response's resources: returns the update to apply.
    mutating func accept(version: String, names sent: [String]) -> ADSResourceUpdate {
        acceptedVersion = version
        var updated: [String] = []
        var present = Set<String>()
        for name in sent where wants(name) {
            updated.append(name)
            present.insert(name)
            resources[name] = .received
        }
        var removed: [String] = []
        if type.responsesAreComplete {
            for (name, status) in resources where !present.contains(name) && status != .doesNotExist {
                removed.append(name)
                if case .all = names { resources[name] = nil } else { resources[name] = .doesNotExist }
            }
        }
        return ADSResourceUpdate(type: type, versionInfo: version, updated: updated, removed: removed.sorted())
    }
}
