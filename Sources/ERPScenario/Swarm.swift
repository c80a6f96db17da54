import ERPCore
import ERPServices

/// Swarm testing (Groce et al.): each seed draws its own fault schedule and workload mix from a
/// scenario's vocabulary, so a library explores schedules nobody wrote. The vocabulary is the kinds
/// of fault the scenario schedules (crash, partition, link, pause, …; a scenario with none lends
/// the default: crash, partition, link loss, pause); a drawn schedule has 1 to twice as many faults
/// as the scenario (at least 2), each at a random time of the chaos phase, for a random length, on
/// random services; the order rate is the scenario's times 0.5–1.5; the heal phase lasts at least
/// the scenario's `healFloor`. The same scenario and seed draw the same schedule in any process.
public enum Swarm {
    /// The services a drawn fault may strike: every service of the catalogue.
    static let targets = ServiceCatalog.startOrder.map(NodeName.init)
    /// The services with a disk to fail or sync slowly: a disk fault drawn on one without a
    /// database (the gateway) did nothing.
    static let storedTargets = ServiceCatalog.databaseFiles.map { NodeName($0.service) }

    /// Draws `seed`'s schedule from `scenario`'s vocabulary.
    ///
    /// With a `vocabulary` (`erp explore --swarm --mix`: the fault kinds of every scenario given),
    /// the seed's faults come from that instead, over the scenario's own workload: first a random
    /// part of the vocabulary's kinds (each kind in with even odds, at least one: swarm testing's
    /// omission of features, so that one kind's faults do not always mask another's), then 2 to 8
    /// faults of those kinds. A power loss over a rolling upgrade over skewed clocks is a schedule
    /// no scenario of the library writes.
    public static func draw(from scenario: Scenario, seed: UInt64, vocabulary: [ScheduledFault.Kind]? = nil) -> Scenario {
        // A --mix seed draws from the same vocabulary for every scenario: the scenario's name goes
        // into the draw, so that seed N is not one schedule laid over sixteen workloads.
        let mixing = vocabulary.flatMap { $0.isEmpty ? nil : $0 }
        let salt = mixing == nil ? 0 : stableHash(scenario.name)
        let random = SeededRandomSource(seed: (seed ^ salt) &* 0x9E37_79B9_7F4A_7C15 ^ 0x5357_4152_4D00_0000)
        let chaos = scenario.duration
        var drawn = scenario
        // The file run alone (without --seed) runs the seed it was drawn for.
        drawn.seed = seed
        drawn.name = scenario.name + (mixing == nil ? "-swarm" : "-mix")
        drawn.description = "Drawn by erp explore --swarm\(mixing == nil ? "" : " --mix") from \(scenario.name), seed \(seed)"
        drawn.workload.ratePerSecond = (scenario.workload.ratePerSecond * random.uniform(0.5, 1.5) * 10).rounded() / 10
        let templates: [ScheduledFault.Kind]
        let count: Int
        if let vocabulary = mixing {
            let kinds = orderedKinds(vocabulary)
            var chosen = kinds.filter { _ in random.chance(0.5) }
            if chosen.isEmpty { chosen = [random.pick(kinds)] }
            templates = vocabulary.filter { chosen.contains($0.kindName) }
            count = random.int(in: 2...8)
        } else {
            templates = scenario.faults.isEmpty ? defaultVocabulary : scenario.faults.map(\.kind)
            count = random.int(in: 1...max(2, 2 * scenario.faults.count))
        }
        drawn.faults = (0..<count).map { _ in
            let kind = retarget(random.pick(templates), random: random)
            let at = millisecondsCeiling(chaos.seconds * random.uniform(0, 0.8))
            let lasting: Duration? = kind.ends ? millisecondsCeiling(random.uniform(0.5, max(0.5, chaos.seconds / 3))) : nil
            return ScheduledFault(at: at, duration: lasting, kind: kind)
        }.sorted { $0.at < $1.at }
        // Never under the floor (`healFloor`): with a shorter heal, 22 of 480 swarm seeds over the
        // library failed liveness for a breaker opened less than its 30 s reset before the end.
        drawn.heal = max(scenario.heal, drawn.healFloor)
        // Scaled expectations would not fit a schedule nobody calibrated: only the invariants judge.
        drawn.expect = Scenario.Expectations()
        return drawn
    }

    /// The fault kinds of `scenarios` (or the default vocabulary when none schedules a fault),
    /// each template once, in an order that does not depend on the order the scenarios came in.
    public static func vocabulary(of scenarios: [Scenario]) -> [ScheduledFault.Kind] {
        var seen = Set<String>()
        // Keyed by the whole value (a link's latency is not in its summary), so equal keys are equal kinds.
        let all = scenarios.flatMap { $0.faults.map(\.kind) }.map { (String(describing: $0), $0) }.sorted { $0.0 < $1.0 }
        let unique = all.filter { seen.insert($0.0).inserted }.map(\.1)
        return unique.isEmpty ? defaultVocabulary : unique
    }

    /// The vocabulary's kind names, sorted, each once.
    public static func orderedKinds(_ vocabulary: [ScheduledFault.Kind]) -> [String] {
        Array(Set(vocabulary.map(\.kindName))).sorted()
    }

    static let defaultVocabulary: [ScheduledFault.Kind] = [
        .crash(NodeName(ServiceName.order), restartAfter: .seconds(1)),
        .partition(NodeName(ServiceName.order), NodeName(ServiceName.inventory)),
        .link(from: NodeName(ServiceName.order), to: NodeName(ServiceName.payment), LinkBehaviour(dropProbability: 0.3)),
        .pause(NodeName(ServiceName.payment)),
    ]

    /// The same kind of fault on services drawn afresh, with its own numbers drawn around the
    /// template's. A disk loss stays on its own service (only some services are built to lose one).
    static func retarget(_ kind: ScheduledFault.Kind, random: SeededRandomSource) -> ScheduledFault.Kind {
        func node() -> NodeName { random.pick(targets) }
        func pair() -> (NodeName, NodeName) {
            let a = node()
            var b = node()
            while b == a { b = node() }
            return (a, b)
        }
        func restart() -> Duration { millisecondsCeiling(random.uniform(0.2, 3)) }
        switch kind {
        case .partition: let (a, b) = pair(); return .partition(a, b)
        case .partitionOneWay: let (a, b) = pair(); return .partitionOneWay(from: a, to: b)
        case .isolate: return .isolate(node())
        case .crash: return .crash(node(), restartAfter: restart())
        case .diskLoss(let target, _): return .diskLoss(target, restartAfter: restart())
        case .powerLoss(let target, _):
            // A whole-cluster power loss stays one; a node's moves to another node.
            return .powerLoss(target == nil ? nil : node(), restartAfter: restart())
        case .powerCut(let target, _):
            return .powerCut(target == nil ? nil : node(), restartAfter: restart())
        case .diskFailure(_, let failure): return .diskFailure(random.pick(storedTargets), failure)
        case .slowSync: return .slowSync(random.pick(storedTargets), millisecondsCeiling(random.uniform(0.005, 0.2)))
        case .pause: return .pause(node())
        case .clockSkew: return .clockSkew(node(), millisecondsCeiling(random.uniform(-2, 2)))
        case .link(_, _, var behaviour):
            let (a, b) = pair()
            behaviour.dropProbability = (random.uniform(0, 0.5) * 100).rounded() / 100
            behaviour.duplicateProbability = (random.uniform(0, 0.05) * 100).rounded() / 100
            return .link(from: a, to: b, behaviour)
        case .providerDeclineRate: return .providerDeclineRate((random.uniform(0, 0.8) * 100).rounded() / 100)
        case .providerDelay: return .providerDelay(millisecondsCeiling(random.uniform(0.1, 2)))
        case .upgrade: return kind
        }
    }

    /// Seconds as a whole number of milliseconds (so a written schedule reads back exactly).
    static func millisecondsCeiling(_ seconds: Double) -> Duration { .milliseconds(Int64((seconds * 1000).rounded(.up))) }
}
