import ERPCore
import ERPResilience
import ERPServices
import ERPSimulation
import Foundation
import Yams

/// A scenario file that cannot run, with the place and the reason.
public struct ScenarioError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var message: String
    public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

/// Reads a scenario from YAML, strictly: an unknown field, a wrong type, an unknown service or a
/// negative rate stops the load with the file, the line and what is wrong.
public struct ScenarioLoader {
    let file: String

    public static func load(path: String) throws(ScenarioError) -> Scenario {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ScenarioError(file: path, line: nil, message: "cannot read the file: \(error.localizedDescription)")
        }
        var scenario = try ScenarioLoader(file: path).parse(text)
        scenario.path = path
        return scenario
    }

    public static func parse(_ text: String, file: String = "<scenario>") throws(ScenarioError) -> Scenario {
        try ScenarioLoader(file: file).parse(text)
    }

    /// A `resilience:` block read on its own (a topology file has one too), with the same checks:
    /// settings that cannot work are refused with the setting's name. `clientTimeout` is the
    /// deadline of the requests these policies serve; a retry budget must fit in it.
    public static func resilience(_ node: Node, file: String, clientTimeout: Duration) throws(ScenarioError) -> ResilienceSettings {
        try ScenarioLoader(file: file).resilience(node, clientTimeout: clientTimeout)
    }

    /// A token bucket `{capacity: N, refillPerSecond: R}` read on its own (a topology's
    /// `http.rateLimit`), with the same checks as the scenario's `rateLimit` buckets.
    public static func tokenBucket(_ node: Node, file: String, what: String) throws(ScenarioError) -> TokenBucketSettings {
        try ScenarioLoader(file: file).tokenBucket(node, what)
    }

    func tokenBucket(_ node: Node, _ what: String) throws(ScenarioError) -> TokenBucketSettings {
        let b = try mapping(node, what, keys: ["capacity", "refillPerSecond"])
        guard let capacity = b["capacity"], let refill = b["refillPerSecond"] else {
            throw fail(node, "\(what) must be {capacity: N, refillPerSecond: R}: a burst of N requests, then R per second")
        }
        let settings = TokenBucketSettings(capacity: try integer(capacity, what + ".capacity"),
                                           refillRatePerSecond: try number(refill, what + ".refillPerSecond"))
        do throws(ResilienceConfigurationError) { try settings.validate() } catch { throw fail(node, "\(what): \(error)") }
        return settings
    }

    func parse(_ text: String) throws(ScenarioError) -> Scenario {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw fail(nil, "the file is empty") }
            root = node
        } catch let error as ScenarioError {
            throw error
        } catch let error as YamlError {
            throw yamlFailure(error)
        } catch {
            throw fail(nil, "not valid YAML: \(error)")
        }
        let top = try mapping(root, "scenario", keys: ["name", "description", "seed", "duration", "heal", "fixtures", "network",
                                                        "workload", "payment", "faults", "expect", "defects", "resilience"])
        var scenario = Scenario(name: try string(top.required("name")))
        if let v = top["description"] { scenario.description = try string(v) }
        if let v = top["seed"] { scenario.seed = try seed(v) }
        if let v = top["duration"] { scenario.duration = try positiveDuration(v, "duration", max: Scenario.Limits.phaseDurationMax) }
        if let v = top["heal"] { scenario.heal = try positiveDuration(v, "heal", max: Scenario.Limits.phaseDurationMax) }
        if let v = top["fixtures"] { scenario.fixturesPath = try string(v) }
        if let v = top["network"] { scenario.network.link = try link(v, base: scenario.network.link, context: "network") }
        if let v = top["workload"] {
            scenario.workload = try workload(v)
            let offered = scenario.workload.ratePerSecond * scenario.duration.seconds
            guard offered <= Scenario.Limits.orderCountMax else {
                throw fail(v, "workload.orders.rate \(scenario.workload.ratePerSecond)/s over duration \(scenario.duration.shortDescription) "
                           + "offers \(Int(offered)) orders; a run offers at most \(Int(Scenario.Limits.orderCountMax))")
            }
        }
        if let v = top["payment"] {
            let m = try mapping(v, "payment", keys: ["declineRate", "processingTime"])
            if let r = m["declineRate"] { scenario.payment.declineRate = try probability(r, "payment.declineRate") }
            if let t = m["processingTime"] { scenario.payment.processingTime = try duration(t, "payment.processingTime") }
        }
        if let v = top["faults"] { scenario.faults = try faults(v, scenario: scenario) }
        if let v = top["resilience"] { scenario.resilience = try resilience(v, clientTimeout: scenario.workload.timeout) }
        if let v = top["expect"] {
            let m = try mapping(v, "expect", keys: ["minConfirmed", "minCancelled"])
            if let n = m["minConfirmed"] { scenario.expect.minConfirmed = try count(n, "expect.minConfirmed") }
            if let n = m["minCancelled"] { scenario.expect.minCancelled = try count(n, "expect.minCancelled") }
        }
        if let v = top["defects"] {
            for item in try sequence(v, "defects") {
                let name = try string(item)
                guard scenario.defects.enable(name) else {
                    throw fail(item, "unknown defect '\(name)'; known: \(PlantedDefects.names.joined(separator: ", "))")
                }
            }
        }
        return scenario
    }

    // MARK: Sections

    private func workload(_ node: Node) throws(ScenarioError) -> Scenario.OrderWorkload {
        let top = try mapping(node, "workload", keys: ["orders"])
        var w = Scenario.OrderWorkload()
        guard let orders = top["orders"] else { return w }
        let m = try mapping(orders, "workload.orders", keys: ["rate", "itemsPerOrder", "quantity", "timeout", "attempts"])
        if let v = m["rate"] {
            let rate = try number(v, "workload.orders.rate")
            guard rate >= 0 else { throw fail(v, "workload.orders.rate must not be negative, got \(rate)") }
            guard rate <= Scenario.Limits.orderRatePerSecondMax else {
                throw fail(v, "workload.orders.rate must be at most \(Int(Scenario.Limits.orderRatePerSecondMax)) orders per second, got \(rate)")
            }
            w.ratePerSecond = rate
        }
        // An order the services would refuse is not a workload: the same bounds as theirs.
        if let v = m["itemsPerOrder"] { w.itemsPerOrder = try intRange(v, "workload.orders.itemsPerOrder", minimum: 1, maximum: OrderLine.countMax) }
        if let v = m["quantity"] { w.quantity = try intRange(v, "workload.orders.quantity", minimum: 1, maximum: OrderLine.quantityMax) }
        if let v = m["timeout"] { w.timeout = try positiveDuration(v, "workload.orders.timeout") }
        if let v = m["attempts"] {
            w.attemptCountMax = try count(v, "workload.orders.attempts")
            guard (1...Scenario.Limits.attemptCountMax).contains(w.attemptCountMax) else {
                throw fail(v, "workload.orders.attempts must be from 1 to \(Scenario.Limits.attemptCountMax)")
            }
        }
        return w
    }

    /// Breaker, retry and rate-limit settings. Settings that cannot work are refused here, with
    /// the setting's name, rather than discovered during the run.
    private func resilience(_ node: Node, clientTimeout: Duration) throws(ScenarioError) -> ResilienceSettings {
        let m = try mapping(node, "resilience", keys: ["circuitBreaker", "retry", "rateLimit"])
        var settings = ResilienceSettings()
        var policy = CallPolicySettings.seed
        if let v = m["circuitBreaker"] {
            let b = try mapping(v, "resilience.circuitBreaker", keys: ["timeout", "errorThresholdPercentage", "resetTimeout",
                                                                         "rollingCountTimeout", "rollingCountBuckets", "volumeThreshold"])
            if let x = b["timeout"] { policy.circuitBreaker.timeout = try signedDuration(x, "circuitBreaker.timeout") }
            if let x = b["errorThresholdPercentage"] { policy.circuitBreaker.errorThresholdPercentage = try number(x, "circuitBreaker.errorThresholdPercentage") }
            if let x = b["resetTimeout"] { policy.circuitBreaker.resetTimeout = try signedDuration(x, "circuitBreaker.resetTimeout") }
            if let x = b["rollingCountTimeout"] { policy.circuitBreaker.rollingCountTimeout = try signedDuration(x, "circuitBreaker.rollingCountTimeout") }
            if let x = b["rollingCountBuckets"] { policy.circuitBreaker.rollingCountBuckets = try integer(x, "circuitBreaker.rollingCountBuckets") }
            if let x = b["volumeThreshold"] { policy.circuitBreaker.volumeThreshold = try integer(x, "circuitBreaker.volumeThreshold") }
        }
        if let v = m["retry"] {
            let r = try mapping(v, "resilience.retry", keys: ["attempts", "baseDelay", "maxDelay"])
            if let x = r["attempts"] { policy.retry.attemptCountMax = try integer(x, "retry.attempts") }
            if let x = r["baseDelay"] { policy.retry.baseDelay = try signedDuration(x, "retry.baseDelay") }
            if let x = r["maxDelay"] { policy.retry.maxDelay = try signedDuration(x, "retry.maxDelay") }
        }
        do throws(ResilienceConfigurationError) {
            try policy.validate()
            // A retry budget longer than the client's own deadline could never be spent.
            try policy.validate(against: clientTimeout)
        } catch {
            throw fail(node, "resilience: \(error)")
        }
        settings.defaultPolicy = policy
        if let v = m["rateLimit"] {
            let r = try mapping(v, "resilience.rateLimit", keys: ["perClient", "gateway"])
            if let x = r["perClient"] { settings.perClientRateLimit = try tokenBucket(x, "rateLimit.perClient") }
            if let x = r["gateway"] { settings.gatewayRateLimit = try tokenBucket(x, "rateLimit.gateway") }
        }
        return settings
    }

    private func integer(_ node: Node, _ what: String) throws(ScenarioError) -> Int {
        guard case .scalar = node, let n = node.int else { throw fail(node, "\(what) must be a whole number, got '\(node.string ?? "a structure")'") }
        return n
    }

    private func link(_ node: Node, base: LinkSettings, context: String) throws(ScenarioError) -> LinkSettings {
        let m = try mapping(node, context, keys: ["latency", "drop", "duplicate", "reorder", "from", "to"])
        var link = base
        if let v = m["latency"] {
            let l = try mapping(v, context + ".latency", keys: ["min", "max"])
            link.latencyMin = try duration(l.required("min"), context + ".latency.min")
            link.latencyMax = try duration(l.required("max"), context + ".latency.max")
            guard link.latencyMin <= link.latencyMax else { throw fail(v, "\(context).latency.min must not exceed max") }
        }
        if let v = m["drop"] { link.dropProbability = try probability(v, context + ".drop") }
        if let v = m["duplicate"] { link.duplicateProbability = try probability(v, context + ".duplicate") }
        if let v = m["reorder"] { link.reorderProbability = try probability(v, context + ".reorder") }
        return link
    }

    private func faults(_ node: Node, scenario: Scenario) throws(ScenarioError) -> [ScheduledFault] {
        var out: [ScheduledFault] = []
        for item in try sequence(node, "faults") {
            let m = try mapping(item, "fault", keys: ["at", "for", "partition", "partitionOneWay", "isolate", "crash", "restartAfter",
                                                       "pause", "clockSkew", "link", "declineRate", "providerDelay"])
            let at = try duration(m.required("at"), "fault.at")
            let lasting = try m["for"].map { v throws(ScenarioError) in try positiveDuration(v, "fault.for") }
            let kinds = ["partition", "partitionOneWay", "isolate", "crash", "pause", "clockSkew", "link", "declineRate", "providerDelay"].filter { m[$0] != nil }
            guard kinds.count == 1 else {
                throw fail(item, kinds.isEmpty ? "a fault needs one of partition, partitionOneWay, isolate, crash, pause, clockSkew, link, declineRate, providerDelay"
                                               : "a fault has one kind, found \(kinds.joined(separator: " and "))")
            }
            guard at < scenario.duration else {
                throw fail(m["at"], "fault at \(at.shortDescription) is after the chaos phase (duration \(scenario.duration.shortDescription))")
            }
            let kind: ScheduledFault.Kind
            switch kinds[0] {
            case "partition":
                let pair = try sequence(m["partition"]!, "partition")
                guard pair.count == 2 else { throw fail(m["partition"], "partition takes two services, e.g. [order, inventory]") }
                kind = .partition(try service(pair[0]), try service(pair[1]))
            case "partitionOneWay":
                let p = try mapping(m["partitionOneWay"]!, "partitionOneWay", keys: ["from", "to"])
                kind = .partitionOneWay(from: try service(p.required("from")), to: try service(p.required("to")))
            case "isolate": kind = .isolate(try service(m["isolate"]!))
            case "crash":
                let restart = try m["restartAfter"].map { v throws(ScenarioError) in try duration(v, "fault.restartAfter") }
                kind = .crash(try service(m["crash"]!), restartAfter: restart)
            case "pause": kind = .pause(try service(m["pause"]!))
            case "clockSkew":
                let s = try mapping(m["clockSkew"]!, "clockSkew", keys: ["service", "by"])
                kind = .clockSkew(try service(s.required("service")), try signedDuration(s.required("by"), "clockSkew.by"))
            case "link":
                let l = try mapping(m["link"]!, "link", keys: ["from", "to", "latency", "drop", "duplicate", "reorder"])
                kind = .link(from: try service(l.required("from")), to: try service(l.required("to")),
                             try link(m["link"]!, base: scenario.network.link, context: "link"))
            case "providerDelay":
                kind = .providerDelay(try duration(m["providerDelay"]!, "fault.providerDelay"))
            default:
                kind = .providerDeclineRate(try probability(m["declineRate"]!, "fault.declineRate"))
            }
            if m["restartAfter"] != nil, case .crash = kind {} else if m["restartAfter"] != nil {
                throw fail(m["restartAfter"], "restartAfter belongs to a crash fault")
            }
            out.append(ScheduledFault(at: at, duration: lasting, kind: kind, line: line(item) ?? 0))
        }
        return out
    }

    // MARK: Typed readers

    struct Fields {
        let node: Node
        let entries: [(key: String, value: Node)]
        let loader: ScenarioLoader
        subscript(key: String) -> Node? { entries.first { $0.key == key }?.value }
        func required(_ key: String) throws(ScenarioError) -> Node {
            guard let v = self[key] else { throw loader.fail(node, "missing field '\(key)'") }
            return v
        }
    }

    private func mapping(_ node: Node, _ what: String, keys: [String]) throws(ScenarioError) -> Fields {
        guard case .mapping(let m) = node else { throw fail(node, "\(what) must be a mapping") }
        var entries: [(key: String, value: Node)] = []
        for (k, v) in m {
            guard let key = k.string else { throw fail(k, "keys must be text") }
            guard keys.contains(key) else {
                throw fail(k, "unknown field '\(key)' in \(what); expected one of: \(keys.joined(separator: ", "))")
            }
            guard !entries.contains(where: { $0.key == key }) else { throw fail(k, "field '\(key)' given twice") }
            entries.append((key, v))
        }
        return Fields(node: node, entries: entries, loader: self)
    }

    private func sequence(_ node: Node, _ what: String) throws(ScenarioError) -> [Node] {
        guard case .sequence(let s) = node else { throw fail(node, "\(what) must be a list") }
        return Array(s)
    }

    private func string(_ node: Node) throws(ScenarioError) -> String {
        guard case .scalar(let s) = node else { throw fail(node, "expected text") }
        return s.string
    }

    private func number(_ node: Node, _ what: String) throws(ScenarioError) -> Double {
        guard case .scalar = node, let d = node.float ?? node.int.map(Double.init), d.isFinite else {
            throw fail(node, "\(what) must be a number, got '\(node.string ?? "a structure")'")
        }
        return d
    }

    private func count(_ node: Node, _ what: String) throws(ScenarioError) -> Int {
        guard case .scalar = node, let n = node.int else { throw fail(node, "\(what) must be a whole number, got '\(node.string ?? "a structure")'") }
        guard n >= 0 else { throw fail(node, "\(what) must not be negative, got \(n)") }
        return n
    }

    private func seed(_ node: Node) throws(ScenarioError) -> UInt64 {
        guard case .scalar(let s) = node, let n = UInt64(s.string) else { throw fail(node, "seed must be a whole number from 0 to 2^64-1") }
        return n
    }

    private func probability(_ node: Node, _ what: String) throws(ScenarioError) -> Double {
        let p = try number(node, what)
        guard (0...1).contains(p) else { throw fail(node, "\(what) is a probability within 0...1, got \(p)") }
        return p
    }

    private func signedDuration(_ node: Node, _ what: String) throws(ScenarioError) -> Duration {
        let text = try string(node)
        let negative = text.hasPrefix("-")
        guard let d = Duration(parsing: negative ? String(text.dropFirst()) : text) else {
            throw fail(node, "\(what) must be a duration such as 250ms or 3s, got '\(text)'")
        }
        guard d <= Scenario.Limits.durationMax else {
            throw fail(node, "\(what) must be at most \(Scenario.Limits.durationMax.shortDescription), got '\(text)'")
        }
        return negative ? .zero - d : d
    }

    private func duration(_ node: Node, _ what: String) throws(ScenarioError) -> Duration {
        let d = try signedDuration(node, what)
        guard d >= .zero else { throw fail(node, "\(what) must not be negative") }
        return d
    }

    private func positiveDuration(_ node: Node, _ what: String, max: Duration = Scenario.Limits.durationMax) throws(ScenarioError) -> Duration {
        let d = try duration(node, what)
        guard d > .zero else { throw fail(node, "\(what) must be longer than zero") }
        guard d <= max else { throw fail(node, "\(what) must be at most \(max.shortDescription), got \(d.shortDescription)") }
        return d
    }

    private func intRange(_ node: Node, _ what: String, minimum: Int, maximum: Int) throws(ScenarioError) -> ClosedRange<Int> {
        let m = try mapping(node, what, keys: ["min", "max"])
        let lo = try count(m.required("min"), what + ".min"), hi = try count(m.required("max"), what + ".max")
        guard lo >= minimum else { throw fail(m["min"], "\(what).min must be at least \(minimum)") }
        guard hi <= maximum else { throw fail(m["max"], "\(what).max must be at most \(maximum)") }
        guard lo <= hi else { throw fail(node, "\(what).min must not exceed max") }
        return lo...hi
    }

    private func service(_ node: Node) throws(ScenarioError) -> NodeName {
        let name = try string(node)
        guard let s = ServiceName(named: name) else {
            throw fail(node, "unknown service '\(name)'; known: \(ServiceName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard ServiceCatalog.startOrder.contains(s) else {
            throw fail(node, "service '\(name)' does not run in this release; running: \(ServiceCatalog.startOrder.map(\.rawValue).joined(separator: ", "))")
        }
        return NodeName(s)
    }

    // MARK: Errors

    private func line(_ node: Node?) -> Int? { node?.mark.map { $0.line } }

    func fail(_ node: Node?, _ message: String) -> ScenarioError {
        ScenarioError(file: file, line: line(node), message: message)
    }

    private func yamlFailure(_ error: YamlError) -> ScenarioError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return ScenarioError(file: file, line: mark.line, message: "YAML syntax: \(problem)")
        default:
            return ScenarioError(file: file, line: nil, message: "YAML: \(error)")
        }
    }
}
