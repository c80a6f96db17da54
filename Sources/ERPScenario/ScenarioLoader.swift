import ERPConfiguration
import ERPCore
import ERPResilience
import ERPServices
import ERPStorage
import Foundation
import Yams

/// A scenario file that cannot run, with the place and the reason (`file:line: reason`).
public typealias ScenarioError = ConfigurationError

/// Reads a scenario from YAML, strictly: an unknown field, a wrong type, an unknown service, a
/// negative rate or more than a run may ask for stops the load with the file, the line and what
/// is wrong. Topology files are read with the same `ConfigurationReader`.
public struct ScenarioLoader {
    let read: ConfigurationReader

    init(file: String) { read = ConfigurationReader(file: file) }

    public static func load(path: String) throws(ScenarioError) -> Scenario {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ScenarioError(file: path, line: nil, message: "cannot read the file: \(whyUnreadable(path, error))")
        }
        var scenario = try ScenarioLoader(file: path).parse(text)
        scenario.path = path
        return scenario
    }

    public static func parse(_ text: String, file: String = "<scenario>") throws(ScenarioError) -> Scenario {
        try ScenarioLoader(file: file).parse(text)
    }

    func parse(_ text: String) throws(ScenarioError) -> Scenario {
        let root = try read.root(of: text)
        let top = try read.mapping(root, "scenario", keys: ["name", "description", "seed", "duration", "heal", "fixtures", "network",
                                                        "workload", "payment", "faults", "expect", "defects", "resilience", "events",
                                                        "durability", "stockTimes"])
        let nameNode = try top.required("name")
        let name = try read.string(nameNode)
        if let problem = Scenario.nameProblem(name) { throw read.fail(nameNode, "name \(problem)") }
        var scenario = Scenario(name: name)
        if let v = top["description"] { scenario.description = try read.string(v) }
        if let v = top["seed"] { scenario.seed = try read.seed(v) }
        if let v = top["duration"] { scenario.duration = try read.positiveDuration(v, "duration", max: Scenario.Limits.phaseDurationMax) }
        if let v = top["heal"] { scenario.heal = try read.positiveDuration(v, "heal", max: Scenario.Limits.phaseDurationMax) }
        if let v = top["fixtures"] { scenario.fixturesPath = try read.string(v) }
        if let v = top["stockTimes"] {
            scenario.stockTimes = try read.count(v, "stockTimes")
            if let problem = Scenario.Limits.stockTimesProblem(scenario.stockTimes) { throw read.fail(v, "stockTimes \(problem)") }
        }
        if let v = top["network"] { scenario.network = try network(v, base: scenario.network) }
        if let v = top["workload"] {
            scenario.workload = try workload(v)
            scenario.devices = try devices(v)
            scenario.store = try store(v)
            let offered = scenario.workload.ratePerSecond * scenario.duration.seconds
            guard offered <= Scenario.Limits.orderCountMax else {
                throw read.fail(v, "workload.orders.rate \(scenario.workload.ratePerSecond)/s over duration \(scenario.duration.shortDescription) "
                           + "offers \(Int(offered)) orders; a run offers at most \(Int(Scenario.Limits.orderCountMax))")
            }
        }
        if let v = top["payment"] {
            let m = try read.mapping(v, "payment", keys: ["declineRate", "processingTime"])
            if let r = m["declineRate"] { scenario.payment.declineRate = try read.probability(r, "payment.declineRate") }
            if let t = m["processingTime"] { scenario.payment.processingTime = try read.duration(t, "payment.processingTime") }
        }
        if scenario.devices.enabled && scenario.heal < scenario.devices.heartbeat * 6 {
            // Silent devices must be declared offline (3 missed heartbeats) and the rest settle.
            throw read.fail(top["heal"] ?? top["workload"], "with devices, heal must last at least 6 heartbeats (\((scenario.devices.heartbeat * 6).shortDescription))")
        }
        if let v = top["events"] {
            for (key, value) in try read.mapping(v, "events", keys: EventTypes.all.map { $0.eventType }).entries {
                scenario.eventVersions.append(try eventVersion(type: key, value, at: value))
            }
        }
        if let v = top["faults"] { scenario.faults = try faults(v, scenario: scenario) }
        if let v = top["durability"] {
            // A service's `synchronous` setting in the simulator, weaker than production's to see
            // what a power loss does then.
            for (key, value) in try read.mapping(v, "durability", keys: ServiceName.allCases.map(\.rawValue)).entries {
                let text = try read.string(value)
                guard let mode = SynchronousMode(rawValue: text) else {
                    throw read.fail(value, "durability.\(key): '\(text)' is not one of \(SynchronousMode.choices)")
                }
                let service = ServiceName(named: key)!
                guard ServiceCatalog.databaseFileName(of: service) != nil else {
                    throw read.fail(value, "durability.\(key): \(key) keeps no database, so it has nothing to sync")
                }
                scenario.durability.append((service, mode))
            }
        }
        if let v = top["resilience"] { scenario.resilience = try read.resilience(v, clientTimeout: scenario.workload.timeout) }
        if let v = top["expect"] {
            let m = try read.mapping(v, "expect", keys: ["minConfirmed", "minCancelled", "onTheBus", "maxCancelled", "minDispensed", "minPriced", "cancelReasons"])
            if let list = m["cancelReasons"] {
                let items = try read.sequence(list, "expect.cancelReasons")
                // Taken as "no list" before: 19 orders cancelled payment_failed passed an empty list.
                if items.isEmpty {
                    throw read.fail(list, "expect.cancelReasons is empty: it lists the only reasons an order may be cancelled for; "
                                    + "to allow no cancellation at all write maxCancelled: 0")
                }
                for item in items {
                    let reason = try read.string(item)
                    if reason == "payment_failed:" + CancelReasons.plainDecline {
                        // The saga writes the provider's usual decline without its code: this never matched.
                        throw read.fail(item, "expect.cancelReasons: a decline for insufficient funds (swishpay's declineRate) is recorded as plain payment_failed")
                    }
                    guard CancelReasons.isKnown(reason) else {
                        throw read.fail(item, "expect.cancelReasons: no order is cancelled for '\(reason)'; the reasons are "
                                        + (CancelReasons.plain + CancelReasons.stems.map { $0 + "<code>" }).joined(separator: ", "))
                    }
                    scenario.expect.cancelReasons.append(reason)
                }
            }
            if let n = m["maxCancelled"] { scenario.expect.maxCancelled = try read.count(n, "expect.maxCancelled") }
            if let n = m["minDispensed"] { scenario.expect.minDispensed = try read.count(n, "expect.minDispensed") }
            if let priced = m["minPriced"] {
                for (key, value) in try read.mapping(priced, "expect.minPriced", keys: ["list", "campaign", "fallback"]).entries {
                    scenario.expect.minPriced.append((key, try read.count(value, "expect.minPriced.\(key)")))
                }
            }
            if let list = m["onTheBus"] {
                for item in try read.sequence(list, "expect.onTheBus") {
                    let words = try read.string(item).split(separator: " ").map(String.init)
                    guard words.count == 2, EventTypes.type(named: words[0]) != nil else {
                        throw read.fail(item, "expect.onTheBus takes 'EventType version' (e.g. 'OrderCreated 1.0')")
                    }
                    // A version no producer of this build writes can never be seen.
                    do { try EventWriterVersions().set(words[0], to: words[1]) } catch {
                        throw read.fail(item, "expect.onTheBus: \(error)")
                    }
                    scenario.expect.onTheBus.append(words.joined(separator: " "))
                }
            }
            if let n = m["minConfirmed"] { scenario.expect.minConfirmed = try read.count(n, "expect.minConfirmed") }
            if let n = m["minCancelled"] { scenario.expect.minCancelled = try read.count(n, "expect.minCancelled") }
            // Expectations no run can meet are refused here, not reported as failed after it.
            if let most = scenario.expect.maxCancelled, scenario.expect.minCancelled > most {
                throw read.fail(m["minCancelled"] ?? v, "expect.minCancelled (\(scenario.expect.minCancelled)) is above expect.maxCancelled (\(most)): no run can meet both")
            }
            if scenario.expect.minDispensed > 0, scenario.store.vendRatePerSecond <= 0 {
                throw read.fail(m["minDispensed"] ?? v, "expect.minDispensed needs vends: the workload has no vending (workload.vending)")
            }
        }
        if let v = top["defects"] {
            for item in try read.sequence(v, "defects") {
                let name = try read.string(item)
                guard scenario.defects.enable(name) else {
                    throw read.fail(item, "unknown defect '\(name)'; known: \(PlantedDefects.names.joined(separator: ", "))")
                }
            }
        }
        return scenario
    }

    // MARK: Sections

    private func workload(_ node: Node) throws(ScenarioError) -> Scenario.OrderWorkload {
        let top = try read.mapping(node, "workload", keys: Self.workloadKeys)
        var w = Scenario.OrderWorkload()
        guard let orders = top["orders"] else { return w }
        let m = try read.mapping(orders, "workload.orders", keys: ["rate", "itemsPerOrder", "quantity", "timeout", "attempts"])
        if let v = m["rate"] {
            let rate = try read.number(v, "workload.orders.rate")
            guard rate >= 0 else { throw read.fail(v, "workload.orders.rate must not be negative, got \(rate)") }
            guard rate <= Scenario.Limits.orderRatePerSecondMax else {
                throw read.fail(v, "workload.orders.rate must be at most \(Int(Scenario.Limits.orderRatePerSecondMax)) orders per second, got \(rate)")
            }
            w.ratePerSecond = rate
        }
        // An order the services would refuse is not a workload: the same bounds as theirs.
        if let v = m["itemsPerOrder"] { w.itemsPerOrder = try read.intRange(v, "workload.orders.itemsPerOrder", minimum: 1, maximum: OrderLine.countMax) }
        if let v = m["quantity"] { w.quantity = try read.intRange(v, "workload.orders.quantity", minimum: 1, maximum: OrderLine.quantityMax) }
        if let v = m["timeout"] { w.timeout = try read.positiveDuration(v, "workload.orders.timeout") }
        if let v = m["attempts"] {
            w.attemptCountMax = try read.count(v, "workload.orders.attempts")
            guard (1...Scenario.Limits.attemptCountMax).contains(w.attemptCountMax) else {
                throw read.fail(v, "workload.orders.attempts must be from 1 to \(Scenario.Limits.attemptCountMax)")
            }
        }
        return w
    }

    private func devices(_ workload: Node) throws(ScenarioError) -> Scenario.DeviceWorkload {
        var d = Scenario.DeviceWorkload()
        guard let node = try read.mapping(workload, "workload", keys: Self.workloadKeys)["devices"] else { return d }
        let m = try read.mapping(node, "workload.devices", keys: ["heartbeat", "faultRate", "silentShare", "restockShare", "countShare", "extraPerShop", "flapShare"])
        d.enabled = true
        if let v = m["heartbeat"] {
            d.heartbeat = try read.positiveDuration(v, "workload.devices.heartbeat")
            guard d.heartbeat >= Scenario.Limits.deviceHeartbeatMin else {
                throw read.fail(v, "workload.devices.heartbeat must be at least \(Scenario.Limits.deviceHeartbeatMin.shortDescription)")
            }
        }
        if let v = m["faultRate"] { d.faultRate = try read.probability(v, "workload.devices.faultRate") }
        if let v = m["silentShare"] { d.silentShare = try read.probability(v, "workload.devices.silentShare") }
        if let v = m["restockShare"] { d.restockShare = try read.probability(v, "workload.devices.restockShare") }
        if let v = m["countShare"] { d.countShare = try read.probability(v, "workload.devices.countShare") }
        if let v = m["flapShare"] { d.flapShare = try read.probability(v, "workload.devices.flapShare") }
        if let v = m["extraPerShop"] {
            d.extraPerShop = try read.count(v, "workload.devices.extraPerShop")
            guard d.extraPerShop <= Scenario.Limits.extraDevicesPerShopMax else {
                throw read.fail(v, "workload.devices.extraPerShop must be at most \(Scenario.Limits.extraDevicesPerShopMax)")
            }
        }
        guard d.restockShare + d.countShare <= 1 else {
            throw read.fail(node, "workload.devices: restockShare + countShare must not exceed 1 (the rest of the heartbeats are status reports)")
        }
        return d
    }

    static let workloadKeys = ["orders", "devices", "vending", "campaigns", "reads"]

    private func store(_ workload: Node) throws(ScenarioError) -> Scenario.StoreWorkload {
        var s = Scenario.StoreWorkload()
        let top = try read.mapping(workload, "workload", keys: Self.workloadKeys)
        if let node = top["vending"] {
            let m = try read.mapping(node, "workload.vending", keys: ["rate", "quantity"])
            if let v = m["rate"] { s.vendRatePerSecond = try rate(v, "workload.vending.rate") }
            if let v = m["quantity"] { s.vendQuantity = try read.intRange(v, "workload.vending.quantity", minimum: 1, maximum: Vend.quantityMax) }
        }
        if let node = top["campaigns"] {
            let m = try read.mapping(node, "workload.campaigns", keys: ["every", "products", "percentOff", "length"])
            s.campaignEvery = try read.positiveDuration(m.required("every"), "workload.campaigns.every")
            if let v = m["products"] { s.campaignProducts = try read.intRange(v, "workload.campaigns.products", minimum: 1, maximum: CreateCampaign.productCountMax) }
            if let v = m["percentOff"] {
                s.campaignPercentOff = try read.intRange(v, "workload.campaigns.percentOff", minimum: CreateCampaign.percentOffRange.lowerBound,
                                                         maximum: CreateCampaign.percentOffRange.upperBound)
            }
            if let v = m["length"] { s.campaignLength = try read.positiveDuration(v, "workload.campaigns.length") }
        }
        if let node = top["reads"] {
            let m = try read.mapping(node, "workload.reads", keys: ["rate"])
            if let v = m["rate"] { s.readRatePerSecond = try rate(v, "workload.reads.rate") }
        }
        return s
    }

    /// A rate per second: not negative, at most what a run may offer.
    private func rate(_ node: Node, _ what: String) throws(ScenarioError) -> Double {
        let rate = try read.number(node, what)
        guard rate >= 0, rate <= Scenario.Limits.orderRatePerSecondMax else {
            throw read.fail(node, "\(what) must be from 0 to \(Int(Scenario.Limits.orderRatePerSecondMax)) per second, got \(rate)")
        }
        return rate
    }

    /// `network:` is a link's behaviour for every link, plus (from `erp calibrate`) the links that
    /// differ and each method's service time.
    private func network(_ node: Node, base: Scenario.NetworkSettings) throws(ScenarioError) -> Scenario.NetworkSettings {
        let m = try read.mapping(node, "network", keys: ["latency", "drop", "duplicate", "reorder", "links", "serviceTime"])
        var network = base
        network.link = try link(node, base: base.link, context: "network", extraKeys: ["links", "serviceTime"])
        if let v = m["links"] {
            network.links = []
            for item in try read.sequence(v, "network.links") {
                let l = try read.mapping(item, "network.links entry", keys: ["from", "to", "latency", "drop", "duplicate", "reorder"])
                let setting = Scenario.NetworkSettings.LinkSetting(
                    from: try serviceName(l.required("from")), to: try serviceName(l.required("to")),
                    behaviour: try link(item, base: network.link, context: "network.links entry"))
                guard !network.links.contains(where: { $0.from == setting.from && $0.to == setting.to }) else {
                    throw read.fail(item, "network.links names \(setting.from) -> \(setting.to) twice")
                }
                network.links.append(setting)
            }
        }
        if let v = m["serviceTime"] {
            guard case .mapping(let methods) = v else { throw read.fail(v, "network.serviceTime must map RPC methods to latencies") }
            network.serviceTimes = []
            for (key, value) in methods {
                guard let method = key.string, !method.isEmpty else { throw read.fail(key, "network.serviceTime: a method name must be text") }
                guard ServiceMethods.all.contains(method) else {
                    throw read.fail(key, "network.serviceTime: no service serves '\(method)'; the methods are \(ServiceMethods.all.joined(separator: ", "))")
                }
                guard !network.serviceTimes.contains(where: { $0.method == method }) else {
                    throw read.fail(key, "network.serviceTime names \(method) twice")
                }
                network.serviceTimes.append((method, try latency(value, context: "network.serviceTime.\(method)")))
            }
            network.serviceTimes.sort { $0.method < $1.method }
        }
        return network
    }

    private func link(_ node: Node, base: LinkBehaviour, context: String, extraKeys: [String] = []) throws(ScenarioError) -> LinkBehaviour {
        let m = try read.mapping(node, context, keys: ["latency", "drop", "duplicate", "reorder", "from", "to"] + extraKeys)
        var link = base
        if let v = m["latency"] { link.latency = try latency(v, context: context + ".latency") }
        if let v = m["drop"] { link.dropProbability = try read.probability(v, context + ".drop") }
        if let v = m["duplicate"] { link.duplicateProbability = try read.probability(v, context + ".duplicate") }
        if let v = m["reorder"] { link.reorderProbability = try read.probability(v, context + ".reorder") }
        return link
    }

    /// `{min, max}` (uniform) or with quantiles between: `{min, p50, p90, p99, p999, max}`, each
    /// at least the one before it.
    private func latency(_ node: Node, context: String) throws(ScenarioError) -> LatencyDistribution {
        let names = LatencyDistribution.namedQuantiles
        let l = try read.mapping(node, context, keys: ["min"] + names.map(\.name) + ["max"])
        let min = try read.duration(l.required("min"), context + ".min")
        let max = try read.duration(l.required("max"), context + ".max")
        var points: [(quantile: Double, latency: Duration)] = []
        for (name, quantile) in names {
            if let v = l[name] { points.append((quantile, try read.duration(v, context + "." + name))) }
        }
        guard let distribution = LatencyDistribution(min: min, points: points, max: max) else {
            throw read.fail(node, "\(context): min, " + points.map { q in names.first { $0.quantile == q.quantile }!.name + ", " }.joined()
                            + "max must each be at least the one before")
        }
        return distribution
    }

    /// Every kind of fault a scenario can name: the key that names it and how its value reads.
    /// The one list of fault names (messages and the accepted keys come from it).
    private var faultKinds: [(key: String, read: (Node, ReadFault) throws(ScenarioError) -> ScheduledFault.Kind)] {
        [
            ("partition", { v, f throws(ScenarioError) in
                let pair = try read.sequence(v, "partition")
                guard pair.count == 2 else { throw read.fail(v, "partition takes two services, e.g. [order, inventory]") }
                let (a, b) = (try service(pair[0]), try service(pair[1]))
                guard a != b else { throw read.fail(v, "partition takes two different services, not \(a) twice (isolate cuts one service off)") }
                return .partition(a, b)
            }),
            ("partitionOneWay", { v, f throws(ScenarioError) in
                let p = try read.mapping(v, "partitionOneWay", keys: ["from", "to"])
                let (from, to) = (try service(p.required("from")), try service(p.required("to")))
                guard from != to else { throw read.fail(v, "partitionOneWay takes two different services, not \(from) twice") }
                return .partitionOneWay(from: from, to: to)
            }),
            ("isolate", { v, f throws(ScenarioError) in .isolate(try service(v)) }),
            ("crash", { v, f throws(ScenarioError) in
                .crash(try service(v), restartAfter: try f.restartAfter.map { v throws(ScenarioError) in try read.duration(v, "fault.restartAfter") })
            }),
            ("diskLoss", { v, f throws(ScenarioError) in
                .diskLoss(try service(v), restartAfter: try f.restartAfter.map { v throws(ScenarioError) in try read.duration(v, "fault.restartAfter") })
            }),
            ("powerLoss", { v, f throws(ScenarioError) in
                let node: NodeName? = try read.string(v) == "all" ? nil : try service(v)
                return .powerLoss(node, restartAfter: try f.restartAfter.map { v throws(ScenarioError) in try read.duration(v, "fault.restartAfter") })
            }),
            ("powerCut", { v, f throws(ScenarioError) in
                let node: NodeName? = try read.string(v) == "all" ? nil : try service(v)
                let restart = try f.restartAfter.map { v throws(ScenarioError) in try read.duration(v, "fault.restartAfter") }
                // The cut lands within 100 ms of `at`; a restart before then would find the node up.
                if let restart, restart < ScheduledFault.Kind.powerCutRestartMinimum {
                    throw read.fail(f.restartAfter, "restartAfter of a powerCut must be at least 100ms (the cut lands within 100ms of at)")
                }
                return .powerCut(node, restartAfter: restart)
            }),
            ("diskFull", { v, f throws(ScenarioError) in .diskFailure(try storedService(v, "diskFull"), .full) }),
            ("diskErrors", { v, f throws(ScenarioError) in .diskFailure(try storedService(v, "diskErrors"), .ioError) }),
            ("slowSync", { v, f throws(ScenarioError) in
                let s = try read.mapping(v, "slowSync", keys: ["service", "by"])
                return .slowSync(try storedService(s.required("service"), "slowSync"), try read.positiveDuration(s.required("by"), "slowSync.by", max: .seconds(10)))
            }),
            ("pause", { v, f throws(ScenarioError) in .pause(try service(v)) }),
            ("clockSkew", { v, f throws(ScenarioError) in
                let s = try read.mapping(v, "clockSkew", keys: ["service", "by"])
                return .clockSkew(try service(s.required("service")), try read.signedDuration(s.required("by"), "clockSkew.by"))
            }),
            ("link", { v, f throws(ScenarioError) in
                let l = try read.mapping(v, "link", keys: ["from", "to", "latency", "drop", "duplicate", "reorder"])
                let (from, to) = (try service(l.required("from")), try service(l.required("to")))
                // A service's calls to itself never cross the network: such a link would do nothing.
                guard from != to else { throw read.fail(v, "link takes two different services, not \(from) twice") }
                return .link(from: from, to: to, try link(v, base: f.scenario.network.link, context: "link"))
            }),
            ("declineRate", { v, f throws(ScenarioError) in .providerDeclineRate(try read.probability(v, "fault.declineRate")) }),
            ("providerDelay", { v, f throws(ScenarioError) in .providerDelay(try read.duration(v, "fault.providerDelay")) }),
            ("upgrade", { v, f throws(ScenarioError) in
                let u = try read.mapping(v, "upgrade", keys: ["event", "version"])
                return .upgrade(try eventVersion(type: try read.string(u.required("event")), u.required("version"), at: v))
            }),
        ]
    }

    /// What a fault kind's reader may need besides its own value.
    private struct ReadFault {
        var scenario: Scenario
        var restartAfter: Node?
    }

    private func faults(_ node: Node, scenario: Scenario) throws(ScenarioError) -> [ScheduledFault] {
        let kinds = faultKinds
        let names = kinds.map(\.key)
        var out: [ScheduledFault] = []
        let items = try read.sequence(node, "faults")
        if items.count > Scenario.Limits.faultCountMax {
            throw read.fail(node, "faults: \(items.count) faults; a scenario schedules at most \(Scenario.Limits.faultCountMax)")
        }
        for item in items {
            let m = try read.mapping(item, "fault", keys: ["at", "for", "restartAfter"] + names)
            let at = try read.duration(m.required("at"), "fault.at")
            let lasting = try m["for"].map { v throws(ScenarioError) in try read.positiveDuration(v, "fault.for") }
            let given = kinds.filter { m[$0.key] != nil }
            guard given.count == 1, let chosen = given.first, let value = m[chosen.key] else {
                throw read.fail(item, given.isEmpty ? "a fault needs one of \(names.joined(separator: ", "))"
                                                    : "a fault has one kind, found \(given.map(\.key).joined(separator: " and "))")
            }
            guard at < scenario.duration else {
                throw read.fail(m["at"], "fault at \(at.shortDescription) is after the chaos phase (duration \(scenario.duration.shortDescription))")
            }
            if m["restartAfter"] != nil && !["crash", "diskLoss", "powerLoss", "powerCut"].contains(chosen.key) {
                throw read.fail(m["restartAfter"], "restartAfter belongs to a crash, diskLoss, powerLoss or powerCut fault")
            }
            let kind = try chosen.read(value, ReadFault(scenario: scenario, restartAfter: m["restartAfter"]))
            // `for` on a fault that does not end was ignored: a crash ends by its restart.
            if lasting != nil && !kind.ends {
                throw read.fail(m["for"], chosen.key == "upgrade" ? "an upgrade does not end: drop for"
                                                                  : "a \(chosen.key) ends by its restart: give restartAfter, not for")
            }
            out.append(ScheduledFault(at: at, duration: lasting, kind: kind, line: read.line(item) ?? 0))
        }
        return out
    }

    /// A version producers of this build can write the type at ("2.0"; YAML's 2.0 reads as text).
    private func eventVersion(type: String, _ node: Node, at place: Node) throws(ScenarioError) -> EventVersionSetting {
        let version = try read.string(node)
        let check = EventWriterVersions()
        do { try check.set(type, to: version) } catch { throw read.fail(place, "\(error)") }
        return EventVersionSetting(eventType: type, version: version)
    }

    private func service(_ node: Node) throws(ScenarioError) -> NodeName { NodeName(try serviceName(node)) }

    /// A service with a database, for what only a disk can have (a disk fault, a durability):
    /// on one without (the gateway) such a fault was taken and did nothing.
    private func storedService(_ node: Node, _ what: String) throws(ScenarioError) -> NodeName {
        let name = try serviceName(node)
        guard ServiceCatalog.databaseFileName(of: name) != nil else {
            let stored = ServiceCatalog.databaseFiles.map(\.service.rawValue)
            throw read.fail(node, "\(what): \(name) keeps no database, so it has no disk to fault; services with one: \(stored.joined(separator: ", "))")
        }
        return NodeName(name)
    }

    private func serviceName(_ node: Node) throws(ScenarioError) -> ServiceName {
        let name = try read.string(node)
        guard let s = ServiceName(named: name) else {
            throw read.fail(node, "unknown service '\(name)'; known: \(ServiceName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return s
    }

}
