/// What a reload changes, in words for its log line: listeners and services added, removed or
/// changed (and in what), the admin server and runtime settings.
public enum ConfigChanges {
    public static func describe(from old: FerryConfig, to new: FerryConfig) -> [String] {
        var changes: [String] = []
        let oldListeners = Dictionary(old.listeners.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newListeners = Dictionary(new.listeners.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for listener in new.listeners {
            guard let before = oldListeners[listener.name] else {
                changes.append("listener \(listener.name) added on \(listener.address)")
                continue
            }
            if before.address != listener.address {
                changes.append("listener \(listener.name) moved from \(before.address) to \(listener.address)")
            } else if before != listener {
                changes.append("listener \(listener.name) changed")
            }
        }
        for listener in old.listeners where newListeners[listener.name] == nil {
            changes.append("listener \(listener.name) removed")
        }
        let oldServices = Dictionary(old.services.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newNames = Set(new.services.map(\.name))
        for service in new.services {
            guard let before = oldServices[service.name] else {
                changes.append("service \(service.name) added")
                continue
            }
            let parts = changedParts(before, service)
            if !parts.isEmpty { changes.append("service \(service.name) changed (\(parts.joined(separator: ", ")))") }
        }
        for service in old.services where !newNames.contains(service.name) {
            changes.append("service \(service.name) removed")
        }
        if old.admin != new.admin { changes.append("admin changed") }
        if old.runtime != new.runtime { changes.append("runtime changed") }
        if old.log != new.log { changes.append("log changed (takes effect at the next start)") }
        if old.accessLog != new.accessLog { changes.append("access_log changed") }
        return changes
    }

    private static func changedParts(_ a: ServiceConfig, _ b: ServiceConfig) -> [String] {
        var parts: [String] = []
        if a.discovery != b.discovery { parts.append("endpoints") }
        if a.pool != b.pool { parts.append("pool") }
        if a.balancer != b.balancer { parts.append("balancer") }
        if a.failureAccrual != b.failureAccrual { parts.append("failure_accrual") }
        if a.retryBudget != b.retryBudget { parts.append("retry_budget") }
        if a.maxConcurrentCalls != b.maxConcurrentCalls { parts.append("max_concurrent_calls") }
        if a.policy != b.policy { parts.append("policy") }
        if a.methods != b.methods { parts.append("methods") }
        if a.tls != b.tls { parts.append("tls") }
        if a.healthCheck != b.healthCheck { parts.append("health_check") }
        if a.slowStart != b.slowStart { parts.append("slow_start") }
        if a.allowNoEndpoints != b.allowNoEndpoints { parts.append("allow_no_endpoints") }
        return parts
    }
}
