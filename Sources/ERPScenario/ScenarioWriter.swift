import ERPCore
import ERPResilience
import ERPStorage

/// Writes a scenario as YAML that `ScenarioLoader` reads back to the same scenario: what
/// `erp explore --swarm` writes for each drawn schedule and `erp shrink` for what it keeps. Every
/// field is written, defaults included, so a file does not depend on this build's defaults.
public enum ScenarioWriter {
    /// `fixturesPath` replaces the scenario's own (a file written elsewhere needs an absolute one).
    public static func yaml(_ s: Scenario, header: [String] = [], fixturesPath: String? = nil) -> String {
        var out = header.map { "# " + $0 }
        func d(_ duration: Duration) -> String { duration.shortDescription }
        func range(_ r: ClosedRange<Int>) -> String { "{min: \(r.lowerBound), max: \(r.upperBound)}" }
        func latency(_ l: LatencyDistribution) -> String {
            "{min: \(d(l.min)), " + l.innerPoints.map { "\($0.name): \(d($0.latency)), " }.joined() + "max: \(d(l.max))}"
        }
        func link(_ l: LinkBehaviour) -> String {
            "latency: \(latency(l.latency)), drop: \(l.dropProbability), duplicate: \(l.duplicateProbability), reorder: \(l.reorderProbability)"
        }
        out.append("name: \(quoted(s.name))")
        if !s.description.isEmpty { out.append("description: \(quoted(s.description))") }
        out.append("seed: \(s.seed)")
        out.append("duration: \(d(s.duration))")
        out.append("heal: \(d(s.heal))")
        out.append("fixtures: \(quoted(fixturesPath ?? s.fixturesPath))")
        out.append("stockTimes: \(s.stockTimes)")
        if s.network.links.isEmpty && s.network.serviceTimes.isEmpty {
            out.append("network: {\(link(s.network.link))}")
        } else {
            out.append("network:")
            let l = s.network.link
            out += ["  latency: \(latency(l.latency))", "  drop: \(l.dropProbability)", "  duplicate: \(l.duplicateProbability)",
                    "  reorder: \(l.reorderProbability)"]
            if !s.network.links.isEmpty {
                out.append("  links:")
                for l in s.network.links { out.append("    - {from: \(l.from), to: \(l.to), \(link(l.behaviour))}") }
            }
            if !s.network.serviceTimes.isEmpty {
                out.append("  serviceTime:")
                for (method, time) in s.network.serviceTimes { out.append("    \(quoted(method)): \(latency(time))") }
            }
        }
        out.append("workload:")
        let w = s.workload
        out.append("  orders: {rate: \(w.ratePerSecond), itemsPerOrder: \(range(w.itemsPerOrder)), quantity: \(range(w.quantity)), timeout: \(d(w.timeout)), attempts: \(w.attemptCountMax)}")
        if s.devices.enabled {
            let v = s.devices
            out.append("  devices: {heartbeat: \(d(v.heartbeat)), faultRate: \(v.faultRate), silentShare: \(v.silentShare), restockShare: \(v.restockShare), countShare: \(v.countShare), extraPerShop: \(v.extraPerShop), flapShare: \(v.flapShare)}")
        }
        let st = s.store
        if st.vendRatePerSecond > 0 { out.append("  vending: {rate: \(st.vendRatePerSecond), quantity: \(range(st.vendQuantity))}") }
        if let every = st.campaignEvery {
            out.append("  campaigns: {every: \(d(every)), products: \(range(st.campaignProducts)), percentOff: \(range(st.campaignPercentOff)), length: \(d(st.campaignLength))}")
        }
        if st.readRatePerSecond > 0 { out.append("  reads: {rate: \(st.readRatePerSecond)}") }
        out.append("payment: {declineRate: \(s.payment.declineRate), processingTime: \(d(s.payment.processingTime))}")
        if !s.eventVersions.isEmpty {
            out.append("events: {" + s.eventVersions.map { "\($0.eventType): \(quoted($0.version))" }.joined(separator: ", ") + "}")
        }
        let p = s.resilience.defaultPolicy, b = p.circuitBreaker
        out.append("resilience:")
        out.append("  circuitBreaker: {timeout: \(d(b.timeout)), errorThresholdPercentage: \(b.errorThresholdPercentage), resetTimeout: \(d(b.resetTimeout)), rollingCountTimeout: \(d(b.rollingCountTimeout)), rollingCountBuckets: \(b.rollingCountBuckets), volumeThreshold: \(b.volumeThreshold)}")
        out.append("  retry: {attempts: \(p.retry.attemptCountMax), baseDelay: \(d(p.retry.baseDelay)), maxDelay: \(d(p.retry.maxDelay))}")
        var limits: [String] = []
        if let c = s.resilience.perClientRateLimit { limits.append("perClient: {capacity: \(c.capacity), refillPerSecond: \(c.refillRatePerSecond)}") }
        if let g = s.resilience.gatewayRateLimit { limits.append("gateway: {capacity: \(g.capacity), refillPerSecond: \(g.refillRatePerSecond)}") }
        if !s.resilience.serviceRateLimits.isEmpty {
            limits.append("services: {" + s.resilience.serviceRateLimits.sorted { $0.key.rawValue < $1.key.rawValue }
                .map { "\($0.key.rawValue): {capacity: \($0.value.capacity), refillPerSecond: \($0.value.refillRatePerSecond)}" }
                .joined(separator: ", ") + "}")
        }
        if !limits.isEmpty { out.append("  rateLimit: {" + limits.joined(separator: ", ") + "}") }
        if !s.durability.isEmpty {
            out.append("durability: {" + s.durability.map { "\($0.service): \($0.synchronous.rawValue)" }.joined(separator: ", ") + "}")
        }
        if s.faults.isEmpty {
            out.append("faults: []")
        } else {
            out.append("faults:")
            for fault in s.faults { out.append("  - " + faultLine(fault, link: link)) }
        }
        let e = s.expect
        var expect = ["minConfirmed: \(e.minConfirmed)", "minCancelled: \(e.minCancelled)"]
        if let most = e.maxCancelled { expect.append("maxCancelled: \(most)") }
        if e.minDispensed > 0 { expect.append("minDispensed: \(e.minDispensed)") }
        if !e.cancelReasons.isEmpty { expect.append("cancelReasons: [" + e.cancelReasons.map(quoted).joined(separator: ", ") + "]") }
        if !e.minPriced.isEmpty { expect.append("minPriced: {" + e.minPriced.map { "\($0.pricing): \($0.count)" }.joined(separator: ", ") + "}") }
        if !e.onTheBus.isEmpty { expect.append("onTheBus: [" + e.onTheBus.map(quoted).joined(separator: ", ") + "]") }
        out.append("expect: {" + expect.joined(separator: ", ") + "}")
        out.append("defects: [" + s.defects.enabledNames.joined(separator: ", ") + "]")
        return out.joined(separator: "\n") + "\n"
    }

    static func faultLine(_ fault: ScheduledFault, link: (LinkBehaviour) -> String) -> String {
        var parts = ["at: \(fault.at.shortDescription)"]
        if let length = fault.duration { parts.append("for: \(length.shortDescription)") }
        // The key is the kind's own (`kindName`), so a file written here reads back as the kind.
        let value: String
        switch fault.kind {
        case .partition(let a, let b): value = "[\(a), \(b)]"
        case .partitionOneWay(let from, let to): value = "{from: \(from), to: \(to)}"
        case .isolate(let node), .crash(let node, _), .diskLoss(let node, _), .diskFailure(let node, _), .pause(let node): value = "\(node)"
        case .powerLoss(let node, _), .powerCut(let node, _): value = node.map(\.rawValue) ?? "all"
        case .slowSync(let node, let by), .clockSkew(let node, let by): value = "{service: \(node), by: \(by.shortDescription)}"
        case .link(let from, let to, let behaviour): value = "{from: \(from), to: \(to), \(link(behaviour))}"
        case .providerDeclineRate(let rate): value = "\(rate)"
        case .providerDelay(let delay): value = delay.shortDescription
        case .upgrade(let setting): value = "{event: \(setting.eventType), version: \(quoted(setting.version))}"
        }
        parts.append("\(fault.kind.kindName): \(value)")
        if let after = fault.kind.restart?.after { parts.append("restartAfter: \(after.shortDescription)") }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    /// A YAML double-quoted scalar.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
