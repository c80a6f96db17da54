import ERPCore

/// How one directed link behaves, whichever backend carries it: the simulator's network model
/// turns it into its `LinkSettings`, the ZeroMQ harness into each process's transport fault
/// filter. Latency is uniform in `[min, max]` unless a calibration gave it quantiles (the ZeroMQ
/// fault filter, which adds latency to a real network, draws uniformly in `[min, max]` even then).
public struct LinkBehaviour: Sendable, Hashable {
    public var latency: LatencyDistribution
    public var dropProbability: Double
    public var duplicateProbability: Double
    /// Probability that a message ignores the link's FIFO order.
    public var reorderProbability: Double

    public init(latency: LatencyDistribution, dropProbability: Double = 0, duplicateProbability: Double = 0,
                reorderProbability: Double = 0) {
        self.latency = latency; self.dropProbability = dropProbability
        self.duplicateProbability = duplicateProbability; self.reorderProbability = reorderProbability
    }

    public init(latencyMin: Duration = .milliseconds(1), latencyMax: Duration = .milliseconds(4), dropProbability: Double = 0,
                duplicateProbability: Double = 0, reorderProbability: Double = 0) {
        self.init(latency: .uniform(latencyMin, latencyMax), dropProbability: dropProbability,
                  duplicateProbability: duplicateProbability, reorderProbability: reorderProbability)
    }

    public var latencyMin: Duration { latency.min }
    public var latencyMax: Duration { latency.max }

    /// The same link without loss, duplication or reordering: what the heal phase runs on.
    public var healed: LinkBehaviour { LinkBehaviour(latency: latency) }

    public var summaryText: String {
        "latency \(latency), drop \(dropProbability), duplicate \(duplicateProbability), reorder \(reorderProbability)"
    }
}

/// Applies faults to a running system: one method per kind of fault, implemented by each backend
/// (the simulator's world; the ZeroMQ harness's supervisor and control calls). A new kind of
/// fault is one case of `ScheduledFault.Kind` plus one method here per injector.
///
/// Methods are called in schedule order on the runner's side and must not block: a backend that
/// needs to talk to its processes does so in `propagate()`, which the runner awaits after each
/// step.
public protocol FaultInjector: AnyObject, Sendable {
    /// Cuts (or, with `on` false, restores) both directions between `a` and `b`.
    func partition(_ a: NodeName, _ b: NodeName, on: Bool)
    /// Cuts (or restores) messages from `from` to `to` only.
    func partitionOneWay(from: NodeName, to: NodeName, on: Bool)
    /// Cuts a node off from every other node (or lets it rejoin).
    func isolate(_ node: NodeName, on: Bool)
    /// Kills the node's process: its tasks vanish, its uncommitted work is lost.
    func crash(_ node: NodeName)
    /// Starts a crashed node again from its database.
    func restart(_ node: NodeName)
    /// Kills the node's process and loses its disk: its databases are gone, and it restarts (at
    /// its restart) from nothing, as a replacement machine would.
    func loseDisk(_ node: NodeName)
    /// Cuts the power under the node (nil: every service node): its process dies, and its files
    /// lose what was written since their last sync, except what the seed lets through whole or
    /// torn. It restarts as after a crash. Simulation only.
    func powerLoss(_ node: NodeName?)
    /// Cuts the power inside the node's next writes (nil: every service node), so that a commit
    /// can be interrupted half-written; then as `powerLoss`. Simulation only.
    func powerCut(_ node: NodeName?)
    /// Starts every node a fault took down.
    func restartAll()
    /// The node's writes fail so (nil: they succeed again). Simulation only.
    func diskFailure(_ node: NodeName, _ failure: DiskFailure?)
    /// Each sync of the node's disk takes this long (nil: no time). Simulation only.
    func syncLatency(_ node: NodeName, _ latency: Duration?)
    /// Stops scheduling the node (or lets it run again).
    func pause(_ node: NodeName, on: Bool)
    /// Offsets the node's clock (`.zero` takes the skew away).
    func clockSkew(_ node: NodeName, by skew: Duration)
    /// Overrides the directed link (nil: back to the base network).
    func link(from: NodeName, to: NodeName, _ behaviour: LinkBehaviour?)
    /// swishpay declines new charges with this probability (nil: the scenario's own rate).
    func providerDeclineRate(_ rate: Double?)
    /// swishpay takes this long to answer a charge (nil: the scenario's own time).
    func providerDelay(_ delay: Duration?)
    /// From now on every producer writes the event type at the version (a rolling upgrade, or a
    /// rollback); it stays so through the heal phase.
    func writeEvents(_ setting: EventVersionSetting)
    /// The end of the chaos phase: every fault off, the base network without loss, crashed
    /// nodes restarted, paused ones resumed.
    func heal()
    /// Makes what the calls above decided take effect where that needs I/O. Awaited by the runner
    /// after each step; a no-op where the calls act at once (the simulator).
    func propagate() async
}

extension FaultInjector {
    public func propagate() async {}
}

/// How a disk fails a service's writes.
public enum DiskFailure: String, Sendable, Hashable {
    /// The disk is full (`SQLITE_FULL`).
    case full
    /// The device fails writes and syncs (`SQLITE_IOERR`).
    case ioError
}

/// A fault at a time of the chaos phase, lasting `duration` (nil: until the heal phase).
public struct ScheduledFault: Sendable, Hashable {
    /// Every kind of fault a scenario can schedule. What each means on a backend is that
    /// backend's `FaultInjector` method; `begin`, `end`, `summaryText` and the loader's table are
    /// the only places that know the cases.
    public enum Kind: Sendable, Hashable {
        case partition(NodeName, NodeName)
        case partitionOneWay(from: NodeName, to: NodeName)
        case isolate(NodeName)
        /// Crash; restart after the given delay, or at heal if nil.
        case crash(NodeName, restartAfter: Duration?)
        /// Crash and lose every database of the node; restart (empty) as for a crash.
        case diskLoss(NodeName, restartAfter: Duration?)
        /// Power loss under one node, or every service node (nil); restart as for a crash.
        case powerLoss(NodeName?, restartAfter: Duration?)
        /// Power loss inside one of the node's next writes or syncs (nil: every service node);
        /// restart as for a crash.
        case powerCut(NodeName?, restartAfter: Duration?)
        /// The shortest `restartAfter` of a power cut: the cut lands within 100 ms of `at`
        /// (`SimWorld.powerCut`), and a restart before then would find the node still up.
        public static let powerCutRestartMinimum = Duration.milliseconds(100)
        /// The node's writes fail for the fault's `for` (until heal without one).
        case diskFailure(NodeName, DiskFailure)
        /// Each of the node's syncs takes this long, for the fault's `for`.
        case slowSync(NodeName, Duration)
        case pause(NodeName)
        case clockSkew(NodeName, Duration)
        case link(from: NodeName, to: NodeName, LinkBehaviour)
        case providerDeclineRate(Double)
        /// swishpay takes this long to answer a charge.
        case providerDelay(Duration)
        /// Producers switch the version they write an event type at (a rolling upgrade).
        case upgrade(EventVersionSetting)
    }
    public var at: Duration
    public var duration: Duration?
    public var kind: Kind
    /// Line in the scenario file, for messages.
    public var line: Int

    public init(at: Duration, duration: Duration?, kind: Kind, line: Int = 0) {
        self.at = at; self.duration = duration; self.kind = kind; self.line = line
    }
}

extension ScheduledFault.Kind {
    /// Applies the fault.
    public func begin(on injector: any FaultInjector) {
        switch self {
        case .partition(let a, let b): injector.partition(a, b, on: true)
        case .partitionOneWay(let from, let to): injector.partitionOneWay(from: from, to: to, on: true)
        case .isolate(let node): injector.isolate(node, on: true)
        case .crash(let node, _): injector.crash(node)
        case .diskLoss(let node, _): injector.loseDisk(node)
        case .powerLoss(let node, _): injector.powerLoss(node)
        case .powerCut(let node, _): injector.powerCut(node)
        case .diskFailure(let node, let failure): injector.diskFailure(node, failure)
        case .slowSync(let node, let latency): injector.syncLatency(node, latency)
        case .pause(let node): injector.pause(node, on: true)
        case .clockSkew(let node, let skew): injector.clockSkew(node, by: skew)
        case .link(let from, let to, let behaviour): injector.link(from: from, to: to, behaviour)
        case .providerDeclineRate(let rate): injector.providerDeclineRate(rate)
        case .providerDelay(let delay): injector.providerDelay(delay)
        case .upgrade(let setting): injector.writeEvents(setting)
        }
    }

    /// Takes the fault away when its `for` is over (a crash ends by its restart instead).
    public func end(on injector: any FaultInjector) {
        switch self {
        case .partition(let a, let b): injector.partition(a, b, on: false)
        case .partitionOneWay(let from, let to): injector.partitionOneWay(from: from, to: to, on: false)
        case .isolate(let node): injector.isolate(node, on: false)
        case .crash, .diskLoss, .powerLoss, .powerCut: break
        case .diskFailure(let node, _): injector.diskFailure(node, nil)
        case .slowSync(let node, _): injector.syncLatency(node, nil)
        case .pause(let node): injector.pause(node, on: false)
        case .clockSkew(let node, _): injector.clockSkew(node, by: .zero)
        case .link(let from, let to, _): injector.link(from: from, to: to, nil)
        case .providerDeclineRate: injector.providerDeclineRate(nil)
        case .providerDelay: injector.providerDelay(nil)
        case .upgrade: break
        }
    }

    /// The kind's key in a scenario file (`crash`, `powerLoss`, `diskFull`, …).
    public var kindName: String {
        switch self {
        case .partition: "partition"
        case .partitionOneWay: "partitionOneWay"
        case .isolate: "isolate"
        case .crash: "crash"
        case .diskLoss: "diskLoss"
        case .powerLoss: "powerLoss"
        case .powerCut: "powerCut"
        case .diskFailure(_, .full): "diskFull"
        case .diskFailure(_, .ioError): "diskErrors"
        case .slowSync: "slowSync"
        case .pause: "pause"
        case .clockSkew: "clockSkew"
        case .link: "link"
        case .providerDeclineRate: "declineRate"
        case .providerDelay: "providerDelay"
        case .upgrade: "upgrade"
        }
    }

    /// Whether the fault has an end before heal (a crash is over when its node restarts).
    var ends: Bool {
        switch self {
        case .crash, .diskLoss, .powerLoss, .powerCut, .upgrade: false
        default: true
        }
    }

    /// The node a crash takes down (nil: every node) and when it comes back, if this is a crash
    /// with a restart time.
    var restart: (node: NodeName?, after: Duration)? {
        switch self {
        case .crash(let node, let after?), .diskLoss(let node, let after?): (node, after)
        case .powerLoss(let node, let after?), .powerCut(let node, let after?): (node, after)
        default: nil
        }
    }

    /// Whether the fault ends `node`'s process when it strikes (a crash, a lost disk, a power loss
    /// there or everywhere). A power cut ends it at a write to come, not at its time.
    func endsProcess(of node: NodeName) -> Bool {
        switch self {
        case .crash(let n, _), .diskLoss(let n, _): n == node
        case .powerLoss(let n, _): n == nil || n == node
        default: false
        }
    }

    /// Whether only the simulator can cause the fault (the page cache and the disk under a real
    /// process are the operating system's).
    public var simulationOnly: Bool {
        switch self {
        case .powerLoss, .powerCut, .diskFailure, .slowSync: true
        default: false
        }
    }

    /// The same fault with its own durations scaled (a crash's restart delay).
    func scaled(_ scale: (Duration) -> Duration) -> Self {
        switch self {
        case .crash(let node, let restartAfter): .crash(node, restartAfter: restartAfter.map(scale))
        case .diskLoss(let node, let restartAfter): .diskLoss(node, restartAfter: restartAfter.map(scale))
        case .powerLoss(let node, let restartAfter): .powerLoss(node, restartAfter: restartAfter.map(scale))
        // The cut lands up to 100 ms after `at`: a restart must not come before it (the loader
        // refuses less than 100 ms; scaling a schedule down must not make it).
        case .powerCut(let node, let restartAfter):
            .powerCut(node, restartAfter: restartAfter.map { max(Self.powerCutRestartMinimum, scale($0)) })
        default: self
        }
    }

    /// What the fault does, for reports.
    public var summaryText: String {
        switch self {
        case .partition(let a, let b): "partition \(a) <-> \(b)"
        case .partitionOneWay(let from, let to): "partition \(from) -> \(to)"
        case .isolate(let name): "isolate \(name)"
        case .crash(let name, let restartAfter):
            "crash \(name), " + (restartAfter.map { "restart after \($0.readable)" } ?? "restart at heal")
        case .diskLoss(let name, let restartAfter):
            "disk loss \(name), " + (restartAfter.map { "restart empty after \($0.readable)" } ?? "restart empty at heal")
        case .powerLoss(let name, let restartAfter):
            "power loss \(name.map(\.rawValue) ?? "everywhere"), " + (restartAfter.map { "restart after \($0.readable)" } ?? "restart at heal")
        case .powerCut(let name, let restartAfter):
            "power cut inside a write \(name.map(\.rawValue) ?? "everywhere"), " + (restartAfter.map { "restart after \($0.readable)" } ?? "restart at heal")
        case .diskFailure(let name, .full): "disk full \(name)"
        case .diskFailure(let name, .ioError): "disk errors \(name)"
        case .slowSync(let name, let latency): "slow sync \(name): \(latency.readable) each"
        case .pause(let name): "pause \(name)"
        case .clockSkew(let name, let skew): "clock skew \(name) by \(skew.readable)"
        case .link(let from, let to, let behaviour): "link \(from) -> \(to): \(behaviour.summaryText)"
        case .providerDelay(let delay): "swishpay answers in \(delay.readable)"
        case .providerDeclineRate(let rate): "swishpay declines \(Int(rate * 100))%"
        case .upgrade(let setting): "producers write \(setting.eventType) \(setting.version)"
        }
    }
}

extension Scenario {
    /// The first fault only the simulator can cause, named as `file:line: what` for a refusal.
    public var firstSimulationOnlyFault: String? {
        faults.first { $0.kind.simulationOnly }.map { "\(path.isEmpty ? "" : path + ":")\($0.line): \($0.kind.summaryText)" }
    }
}

extension ScheduledFault {
    /// One line for the run's report: when, for how long, what.
    public var summaryText: String {
        "at \(at.readable)\(duration.map { " for \($0.readable)" } ?? ""): \(kind.summaryText)"
    }
}

extension Scenario {
    /// For each pause that a fault ending its process cuts short (a crash 1 s into a 4 s pause:
    /// the process restarts unpaused), when it ends, by the fault's index. The reports showed
    /// the pause lasting its whole length.
    public var pausesEndedEarly: [Int: (at: Duration, by: String)] {
        var ended: [Int: (at: Duration, by: String)] = [:]
        for (i, fault) in faults.enumerated() {
            guard case .pause(let node) = fault.kind else { continue }
            let end = fault.duration.map { fault.at + $0 } ?? duration
            let cut = faults.filter { $0.at >= fault.at && $0.at < end && $0.kind.endsProcess(of: node) }.min { $0.at < $1.at }
            if let cut { ended[i] = (cut.at, cut.kind.summaryText) }
        }
        return ended
    }

    /// The faults, one line each for the reports, a pause cut short saying so, and so a window or
    /// a restart that the chaos phase's end came before (the heal phase ends every fault and
    /// restarts every node: `isolate … for: 60s` at 4 s of a 5 s phase lasted 1 s, and the report
    /// said 60 s: a scenario author's trial).
    public var faultLines: [String] {
        let ended = pausesEndedEarly
        return faults.enumerated().map { i, fault in
            if let early = ended[i] { return fault.summaryText + " (ended at \(early.at.readable) by: \(early.by))" }
            if fault.kind.ends, let length = fault.duration, fault.at + length > duration {
                return fault.summaryText + " (ended at \(duration.readable), with the chaos phase)"
            }
            if let restart = fault.kind.restart, fault.at + restart.after > duration {
                return fault.summaryText + " (restarted at \(duration.readable), with the heal phase)"
            }
            return fault.summaryText
        }
    }
}

/// One moment of a run's fault schedule.
public struct FaultStep: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        case begin(ScheduledFault)
        case end(ScheduledFault)
        case restart(NodeName)
        /// Every node a fault took down starts again (after a whole-cluster power loss).
        case restartAll
    }
    /// From the start of the chaos phase.
    public var at: Duration
    public var action: Action

    /// Plays the step through `injector`.
    public func apply(to injector: any FaultInjector) {
        switch action {
        case .begin(let fault): fault.kind.begin(on: injector)
        case .end(let fault): fault.kind.end(on: injector)
        case .restart(let node): injector.restart(node)
        case .restartAll: injector.restartAll()
        }
    }

    /// For the run's log.
    public var summaryText: String {
        switch action {
        case .begin(let fault): "fault \(fault.summaryText)"
        case .end(let fault): "fault over: \(fault.summaryText)"
        case .restart(let node): "restart \(node)"
        case .restartAll: "restart every node down"
        }
    }
}

extension Scenario {
    /// The fault schedule as steps in order of time (ties in file order; a fault's own steps as
    /// begin, end, restart). An end past the chaos phase happens when it ends, before the heal;
    /// a restart past it is the heal's.
    ///
    /// The simulator puts these on its timeline before the run starts, so their order at equal
    /// times is part of the trace: changing it changes every trace hash.
    public var faultTimeline: [FaultStep] {
        var steps: [FaultStep] = []
        for fault in faults where fault.at < duration {
            steps.append(FaultStep(at: fault.at, action: .begin(fault)))
            if fault.kind.ends, let length = fault.duration { steps.append(FaultStep(at: min(fault.at + length, duration), action: .end(fault))) }
            if let restart = fault.kind.restart, fault.at + restart.after <= duration {
                steps.append(FaultStep(at: fault.at + restart.after, action: restart.node.map { .restart($0) } ?? .restartAll))
            }
        }
        // Stable: equal times keep the order above.
        let sorted = steps.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        return Self.windowsHeld(sorted)
    }

    /// Overlapping windows of one setting on one target (two pauses of a node, two skews of its
    /// clock, two behaviours of a link, two decline rates): the window that ends first no longer
    /// ends the other. An end while another window of the same setting is still in force is
    /// dropped, or, when the ending window was the latest begun, becomes that other window's
    /// value again. The shorter window used to end the longer one too, though the report listed
    /// it whole (a scenario author's trial: 6 – 8 s of a 0.5 decline rate ran at the base 0.1).
    /// Cuts (partitions, isolations) are counted by the backends instead: a cut lasts while any
    /// fault holds it, whatever its kind.
    static func windowsHeld(_ steps: [FaultStep]) -> [FaultStep] {
        var inForce: [String: [ScheduledFault]] = [:]
        var out: [FaultStep] = []
        out.reserveCapacity(steps.count)
        for step in steps {
            switch step.action {
            case .begin(let fault):
                if let key = fault.kind.settingKey { inForce[key, default: []].append(fault) }
                out.append(step)
            case .end(let fault):
                guard let key = fault.kind.settingKey, var held = inForce[key], let index = held.lastIndex(of: fault) else {
                    out.append(step)
                    continue
                }
                let wasLatest = index == held.count - 1
                held.remove(at: index)
                inForce[key] = held
                if held.isEmpty {
                    out.append(step)
                } else if wasLatest, case .pause = fault.kind {
                    continue   // still paused by the other window
                } else if wasLatest {
                    out.append(FaultStep(at: step.at, action: .begin(held[held.count - 1])))
                }
            case .restart, .restartAll:
                out.append(step)
            }
        }
        return out
    }
}

extension ScheduledFault.Kind {
    /// The setting a window of this kind holds (one per target), for `Scenario.windowsHeld`; nil
    /// for cuts (counted by the backends), crashes (ended by restarts) and upgrades (not undone).
    var settingKey: String? {
        switch self {
        case .pause(let node): "pause \(node)"
        case .clockSkew(let node, _): "clock \(node)"
        case .link(let from, let to, _): "link \(from)->\(to)"
        case .diskFailure(let node, _): "disk \(node)"
        case .slowSync(let node, _): "sync \(node)"
        case .providerDeclineRate: "provider decline rate"
        case .providerDelay: "provider delay"
        case .partition, .partitionOneWay, .isolate, .crash, .diskLoss, .powerLoss, .powerCut, .upgrade: nil
        }
    }
}
