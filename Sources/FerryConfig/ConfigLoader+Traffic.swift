import FerryGRPC

/// The traffic-management parts of a configuration: splits, header matches, rate limits, faults.
extension ConfigLoader {
    /// `[{service, weight}, ...]`: at least two services, each once, weights adding up to more than 0.
    static func decodeSplit(_ value: YAMLValue, services: [ServiceConfig]) throws -> [WeightedService] {
        let items = try value.sequence()
        guard items.count >= 2 else {
            throw value.error("a split names at least two services, each with a weight; for one service write \"service:\"")
        }
        var split: [WeightedService] = []
        for item in items {
            let m = try item.mapping(allowed: ["service", "weight"])
            let service = try m.required("service")
            let name = try serviceReference(service, services: services)
            guard !split.contains(where: { $0.service == name }) else { throw service.error("service \"\(name)\" is in this split twice") }
            split.append(WeightedService(service: name, weight: try m.required("weight").int(in: 0...1_000_000)))
        }
        guard split.contains(where: { $0.weight > 0 }) else {
            throw value.error("the weights of a split add up to 0, so it would send nowhere; give at least one service a weight above 0")
        }
        return split
    }

    /// `[{name, exact | prefix | present: true}, ...]`: request headers a route asks for, all of them.
    static func decodeHeaderMatches(_ value: YAMLValue) throws -> [HeaderMatch] {
        var matches: [HeaderMatch] = []
        for item in try value.sequence() {
            let m = try item.mapping(allowed: ["name", "exact", "prefix", "present"])
            let nameValue = try m.required("name")
            let name = try nameValue.string().lowercased()
            guard !name.isEmpty, !name.hasPrefix(":"), name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                throw nameValue.error("expected a header name such as \"x-canary\" (pseudo-headers are matched by authority, method and path_prefix), got \"\(name)\"")
            }
            let given = [m["exact"], m["prefix"], m["present"]].compactMap { $0 }
            guard given.count == 1 else {
                throw item.error("a header match has one of \"exact\", \"prefix\" or \"present: true\"")
            }
            let kind: HeaderMatch.Kind
            if let v = m["exact"] {
                kind = .exact(try v.string())
            } else if let v = m["prefix"] {
                let prefix = try v.string()
                guard !prefix.isEmpty else { throw v.error("an empty prefix matches any value; write \"present: true\"") }
                kind = .prefix(prefix)
            } else {
                guard try m["present"]!.bool() else {
                    throw m["present"]!.error("\"present: false\" is not supported; match the header's presence with \"present: true\"")
                }
                kind = .present
            }
            guard !matches.contains(where: { $0.name == name }) else { throw nameValue.error("header \"\(name)\" is matched twice in this route") }
            matches.append(HeaderMatch(name: name, kind: kind))
        }
        return matches
    }

    /// `{rate: "100/s", burst: 20, per: all | caller, max_callers}`: a rate is calls per period
    /// (`/s`, `/m`, `/h`, or a duration such as `/100ms`); the burst defaults to one period's calls.
    static func decodeRateLimit(_ value: YAMLValue) throws -> RateLimitConfig {
        let m = try value.mapping(allowed: ["rate", "burst", "per", "max_callers"])
        let rateValue = try m.required("rate")
        let text = try rateValue.string()
        let parts = text.split(separator: "/", maxSplits: 1).map { $0.trimmingSpaces }
        let example = "write calls per period, such as \"100/s\", \"6000/m\" or \"5/100ms\""
        guard parts.count == 2, let calls = Int(parts[0]) else { throw rateValue.error("\(example), got \"\(text)\"") }
        guard calls > 0 else {
            throw rateValue.error("a rate of \(calls) would refuse every call; to stop a method, route it elsewhere, and to not limit it, remove rate_limit")
        }
        guard calls <= 100_000_000 else { throw rateValue.error("at most 100000000 calls per period, got \(calls)") }
        let unit = parts[1]
        let period: Duration
        switch ConfigValues.parseDuration(["s", "m", "h"].contains(unit) ? "1" + unit : unit) {
        case .success(let d): period = d
        case .failure: throw rateValue.error("\(example), got \"\(text)\"")
        }
        guard period >= .milliseconds(1), period <= .seconds(86_400) else {
            throw rateValue.error("the period must be from 1ms to 24h, got \"\(unit)\"")
        }
        guard period.totalNanoseconds / Int64(calls) >= 1 else { throw rateValue.error("more than one call per nanosecond is no limit") }
        let burst = try m["burst"]?.int(in: 1...100_000_000) ?? calls
        var limit = RateLimitConfig(calls: calls, period: period, burst: burst)
        if let v = m["per"] {
            let text = try v.string()
            guard let scope = RateLimitConfig.Scope(rawValue: text) else {
                throw v.error("expected \"all\" (one bucket for every call) or \"caller\" (one per verified client identity), got \"\(text)\"")
            }
            limit.per = scope
        }
        if let v = m["max_callers"] {
            guard limit.per == .caller else { throw v.error("max_callers applies to \"per: caller\" only") }
            limit.maxCallers = try v.int(in: 1...1_000_000)
        }
        return limit
    }
}

extension ConfigLoader {
    /// `{abort: {status, http_status, percent}, delay: {duration, percent}, from_headers, max_header_delay}`.
    static func decodeFault(_ value: YAMLValue) throws -> FaultConfig {
        let m = try value.mapping(allowed: ["abort", "delay", "from_headers", "max_header_delay"])
        var fault = FaultConfig(origin: value.path)
        if let v = m["abort"] {
            let a = try v.mapping(allowed: ["status", "http_status", "percent"])   // http_status: plain HTTP/2 requests (default 503)
            let status = try a["status"].map(Self.status) ?? .unavailable
            guard status != .ok else { throw a["status"]!.error("an abort with OK would not be a fault; use a failing status such as UNAVAILABLE") }
            let http = try a["http_status"]?.int(in: 400...599) ?? 503
            fault.abort = FaultConfig.Abort(grpcStatus: status, httpStatus: http, percent: try percent(a.required("percent")))
        }
        if let v = m["delay"] {
            let d = try v.mapping(allowed: ["duration", "percent"])
            fault.delay = FaultConfig.Delay(duration: try d.required("duration").duration(min: .milliseconds(1), max: .seconds(3600)),
                                            percent: try percent(d.required("percent")))
        }
        fault.fromHeaders = try m["from_headers"]?.bool() ?? false
        if let v = m["max_header_delay"] { fault.maxHeaderDelay = try v.duration(min: .milliseconds(1), max: .seconds(3600)) }
        guard fault.abort != nil || fault.delay != nil || fault.fromHeaders else {
            throw value.error("a fault has \"abort\", \"delay\" or \"from_headers: true\" (else it injects nothing)")
        }
        return fault
    }

    /// `{interval, timeout, unhealthy_threshold, healthy_threshold, service}`.
    static func decodeHealthCheck(_ value: YAMLValue) throws -> HealthCheckConfig {
        var check = HealthCheckConfig()
        if (try? value.bool()) == true { return check }
        let m = try value.mapping(allowed: ["interval", "timeout", "unhealthy_threshold", "healthy_threshold", "service", "watch"])
        if let v = m["interval"] { check.interval = try v.duration(min: .milliseconds(10), max: .seconds(3600)) }
        if let v = m["timeout"] {
            check.timeout = try v.duration(min: .milliseconds(1), max: .seconds(3600))
            guard check.timeout <= check.interval else {
                throw v.error("the timeout (\(ConfigSummary.format(check.timeout))) must not be longer than the interval (\(ConfigSummary.format(check.interval))): checks would overlap")
            }
        } else {
            check.timeout = min(check.timeout, check.interval)
        }
        if let v = m["unhealthy_threshold"] { check.unhealthyThreshold = try v.int(in: 1...100) }
        if let v = m["healthy_threshold"] { check.healthyThreshold = try v.int(in: 1...100) }
        if let v = m["watch"] { check.watch = try v.bool() }
        if let v = m["service"] {
            let name = try v.string()
            guard name.utf8.count <= 1024, !name.contains(where: { $0 == "/" || $0 == " " }) else {
                throw v.error("expected the name the server registers its health under, such as \"helloworld.Greeter\" (or \"\" for the whole server), got \"\(name)\"")
            }
            check.serviceName = name
        }
        return check
    }

    /// `{window, min_weight}` (min_weight: the percent of its weight a new endpoint starts at).
    static func decodeSlowStart(_ value: YAMLValue) throws -> SlowStartConfig {
        let m = try value.mapping(allowed: ["window", "min_weight"])
        var slow = SlowStartConfig()
        if let v = m["window"] { slow.window = try v.duration(min: .milliseconds(100), max: .seconds(3600)) }
        if let v = m["min_weight"] { slow.minWeightPercent = Int(try percent(v).rounded()) }
        guard (1...100).contains(slow.minWeightPercent) else {
            throw m["min_weight"]!.error("a new endpoint starts at 1 to 100 percent of its weight, got \(slow.minWeightPercent)")
        }
        return slow
    }

    /// `success_rate: true` (the defaults) or `{interval, min_requests, min_endpoints, stdev_factor, min_distance}`.
    static func decodeSuccessRate(_ value: YAMLValue) throws -> SuccessRateConfig? {
        var config = SuccessRateConfig()
        if case .scalar = value.node.content { return try value.bool() ? config : nil }
        let m = try value.mapping(allowed: ["interval", "min_requests", "min_endpoints", "stdev_factor", "min_distance"])
        if let v = m["interval"] { config.interval = try v.duration(min: .milliseconds(100), max: .seconds(3600)) }
        if let v = m["min_requests"] { config.minRequests = try v.int(in: 1...1_000_000) }
        if let v = m["min_endpoints"] { config.minEndpoints = try v.int(in: 2...10_000) }
        if let v = m["stdev_factor"] {
            let text = try v.string()
            guard let factor = Double(text), factor.isFinite, factor > 0, factor <= 10 else {
                throw v.error("stdev_factor is a number of standard deviations above 0 and at most 10 (Envoy's default 1.9), got \"\(text)\"")
            }
            config.stdevFactor = factor
        }
        if let v = m["min_distance"] { config.minDistancePercent = try percent(v) }
        return config
    }

    /// A share of calls: a number from 0 to 100 (decimals allowed, such as 0.5).
    private static func percent(_ value: YAMLValue) throws -> Double {
        let text = try value.string()
        guard let p = Double(text.hasSuffix("%") ? String(text.dropLast()) : text), p.isFinite, (0...100).contains(p) else {
            throw value.error("a percent is a number from 0 to 100, got \"\(text)\"")
        }
        return p
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
