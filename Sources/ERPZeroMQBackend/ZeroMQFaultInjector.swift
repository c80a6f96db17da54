import ERPCore
import ERPProduction
import ERPScenario
import ERPStorage
import ERPZeroMQ
import Foundation

/// Faults on real processes. A crash is SIGKILL (the supervisor respawns the child only when told
/// to restart), a pause SIGSTOP/SIGCONT; every other fault changes the `FaultPlan`, and
/// `propagate()` sends each reachable process its whole fault state through the `ApplyFaults`
/// control method (its transport's fault filter, its clock skew, swishpay's behaviour). Twin of
/// the simulator's `SimFaultInjector`, whose faults act inside the world at once. Under the kernel's
/// network (`--network kernel`) partitions and isolations between services are routes instead
/// (`KernelNetwork.cut`), and the filters never hear of them; a one-way partition stays with the
/// filters (a route cannot cut TCP one way: the other side's acknowledgements need the way back).
final class ZeroMQFaultInjector: FaultInjector, @unchecked Sendable {
    // @unchecked Sendable: the plan locks its own state; `pending` and `dirty` are touched only by
    // the runner's task, which makes every call.
    let plan: FaultPlan
    let supervisor: Supervisor
    let control: Control
    let services: [ServiceName]
    let startTimeout: Duration
    /// Where the services keep their databases (a lost disk takes its node's files).
    let databaseDirectory: String
    /// Restarted services being waited for, to give each its share of the faults once it answers.
    private var pending: [Task<Void, Never>] = []
    /// Whether the plan changed since the last push to every process.
    private var dirty = false
    /// The namespaces of `--network kernel`, or nil.
    let kernel: KernelNetwork?

    init(plan: FaultPlan, supervisor: Supervisor, control: Control, services: [ServiceName], startTimeout: Duration,
         databaseDirectory: String, kernel: KernelNetwork? = nil) {
        self.databaseDirectory = databaseDirectory
        self.kernel = kernel
        self.plan = plan
        self.supervisor = supervisor
        self.control = control
        self.services = services
        self.startTimeout = startTimeout
    }

    func partition(_ a: NodeName, _ b: NodeName, on: Bool) {
        if let kernel, let (x, y) = kernel.placed(a, b) {
            kernel.cut(from: x, to: y, on: on)
            kernel.cut(from: y, to: x, on: on)
            return
        }
        change { $0.set(\.partitions, Pair(a, b), on) }
    }

    func partitionOneWay(from: NodeName, to: NodeName, on: Bool) { change { $0.set(\.oneWay, Pair(from, to), on) } }

    func isolate(_ node: NodeName, on: Bool) {
        // The workload's own way in (HTTP to the gateway, the devices' door of the IoT gateway) is
        // cut too, as in simulation, where the client is a node like any other. Only the runner's
        // control calls keep their path.
        plan.update { $0.set(\.cutFromWorkload, node, on) }
        if let kernel, let cut = ServiceName(named: node.rawValue), kernel.addresses[cut] != nil {
            // From every other service, and back; the runner's path (exempt) stays.
            for other in services where other != cut {
                kernel.cut(from: cut, to: other, on: on)
                kernel.cut(from: other, to: cut, on: on)
            }
            return
        }
        change { $0.set(\.isolated, node, on) }
    }

    func crash(_ node: NodeName) {
        plan.update { $0.crashed.insert(node) }
        if !supervisor.crash(node.rawValue) { control.journal.note("\(node) was not running") }
    }

    func loseDisk(_ node: NodeName) {
        crash(node)
        // SIGKILL is immediate; the files go while the process is down.
        for (file, error) in ServiceDatabase.removeFiles(ofNode: node, in: databaseDirectory) {
            control.journal.note("disk loss of \(node): cannot remove \(file): \(error)")
        }
    }

    // The disk faults are the simulator's: `ZeroMQBackend` refuses a scenario that has one before
    // anything starts, so these are never called; each says so if it were.
    func powerLoss(_ node: NodeName?) { control.journal.note("power loss is simulation-only; not applied") }
    func powerCut(_ node: NodeName?) { control.journal.note("power cuts are simulation-only; not applied") }
    func diskFailure(_ node: NodeName, _ failure: DiskFailure?) { control.journal.note("disk failures are simulation-only; not applied") }
    func syncLatency(_ node: NodeName, _ latency: Duration?) { control.journal.note("slow syncs are simulation-only; not applied") }

    func restartAll() {
        for node in plan.current.crashed.sorted(by: { $0.rawValue < $1.rawValue }) { restart(node) }
    }

    func restart(_ node: NodeName) {
        do { try supervisor.restart(node.rawValue) } catch { control.journal.note("cannot restart \(node): \(error)") }
        plan.update { $0.crashed.remove(node) }
        guard let service = ServiceName(named: node.rawValue) else { return }
        let control = control, plan = plan, end = ContinuousClock.now + startTimeout
        pending.append(Task {
            while (try? await control.report(service)) == nil, ContinuousClock.now < end {
                try? await Task.sleep(for: .milliseconds(50))
            }
            await control.push(plan, to: [service])
        })
    }

    func pause(_ node: NodeName, on: Bool) {
        if on {
            plan.update { $0.paused.insert(node) }
            _ = supervisor.send(SIGSTOP, to: node.rawValue)
        } else {
            _ = supervisor.send(SIGCONT, to: node.rawValue)
            plan.update { $0.paused.remove(node) }
            // What changed while it was stopped reaches it now.
            dirty = true
        }
    }

    /// The skews set, with when (the wall clock the services' own clocks are offset from): the
    /// checker times event hops on it. Each reaches its process a moment later, when propagated.
    private(set) var clockSkews = ClockSkews()

    func clockSkew(_ node: NodeName, by skew: Duration) {
        change { $0.skews[node] = skew == .zero ? nil : skew }
        clockSkews.record(.init(node: node.rawValue, atMilliseconds: Self.wallMilliseconds(), skewMilliseconds: skew.nanoseconds / 1_000_000))
    }

    static func wallMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    func link(from: NodeName, to: NodeName, _ behaviour: LinkBehaviour?) {
        change { state in
            state.links.removeAll { $0.link == Pair(from, to) }
            if let behaviour { state.links.append((Pair(from, to), behaviour)) }
        }
    }

    func providerDeclineRate(_ rate: Double?) { change { $0.declineRate = rate } }
    func providerDelay(_ delay: Duration?) { change { $0.processingTime = delay } }
    func writeEvents(_ setting: EventVersionSetting) {
        change { state in
            state.eventVersions.removeAll { $0.eventType == setting.eventType }
            state.eventVersions.append(setting)
        }
    }

    func heal() {
        control.journal.note("heal phase begins")
        let (paused, crashed, skewed) = plan.update { state -> ([NodeName], [NodeName], [NodeName]) in
            let taken = (state.paused.sorted(), state.crashed.sorted(), state.skews.keys.sorted())
            state = FaultPlan.State(workloadLosses: state.workloadLosses, crashed: state.crashed, eventVersions: state.eventVersions, healed: true)
            return taken
        }
        // The heal takes every skew away.
        kernel?.restoreAll()
        let now = Self.wallMilliseconds()
        for node in skewed { clockSkews.record(.init(node: node.rawValue, atMilliseconds: now, skewMilliseconds: 0)) }
        for node in paused { _ = supervisor.send(SIGCONT, to: node.rawValue) }
        for node in crashed {
            control.journal.note("restart \(node)")
            restart(node)
        }
        dirty = true
    }

    func propagate() async {
        if dirty {
            dirty = false
            await control.push(plan, to: services)
        }
    }

    /// Waits for every restarted service to answer and take its faults.
    func awaitRestarts() async {
        let waiting = pending
        pending = []
        for task in waiting { await task.value }
    }

    private func change(_ body: (inout FaultPlan.State) -> Void) {
        plan.update(body)
        dirty = true
    }
}

/// A directed pair of nodes.
struct Pair: Hashable, Sendable {
    var from: NodeName
    var to: NodeName
    init(_ from: NodeName, _ to: NodeName) { self.from = from; self.to = to }
}

/// The faults in force, and what each process's filter must be because of them. The runner's
/// task changes it; restart, push and report tasks read it meanwhile, hence the lock.
final class FaultPlan: @unchecked Sendable {
    struct State {
        /// Symmetric partitions, in the order they began.
        var partitions: [Pair] = []
        var oneWay: [Pair] = []
        var isolated: [NodeName] = []
        /// Nodes the workload's requests and devices cannot reach: the isolated ones, under the
        /// kernel's network too (whose routes spare the runner's whole path).
        var cutFromWorkload: [NodeName] = []
        /// The workload's requests, answers and device messages lost to those cuts, by node.
        var workloadLosses: [NodeName: Int] = [:]
        /// Link overrides from one node to another; the latest for a pair wins.
        var links: [(link: Pair, behaviour: LinkBehaviour)] = []
        var skews: [NodeName: Duration] = [:]
        var declineRate: Double?
        var processingTime: Duration?
        var crashed: Set<NodeName> = []
        var paused: Set<NodeName> = []
        /// The versions producers write at: the scenario's, then each upgrade's (kept at heal).
        var eventVersions: [EventVersionSetting] = []
        /// After the chaos phase the base network loses nothing (latency only), as in simulation.
        var healed = false

        /// Adds (`on`) or removes one occurrence of `element` in the list at `path`.
        mutating func set<Element: Equatable>(_ path: WritableKeyPath<State, [Element]>, _ element: Element, _ on: Bool) {
            if on { self[keyPath: path].append(element) } else if let i = self[keyPath: path].firstIndex(of: element) {
                self[keyPath: path].remove(at: i)
            }
        }
    }

    private let lock = NSLock()
    private var state = State()
    private let scenario: Scenario
    /// Nodes no fault ever touches: the runner, which must keep control of an isolated node.
    let exempt: [String]

    init(scenario: Scenario, exempt: [String]) {
        self.scenario = scenario
        self.exempt = exempt
        state.eventVersions = scenario.eventVersions
    }

    @discardableResult
    func update<T>(_ body: (inout State) -> T) -> T { lock.withLock { body(&state) } }

    var current: State { lock.withLock { state } }

    /// Whether a message of the workload's to or from `node` is lost now (`State.cutFromWorkload`);
    /// each loss is counted (`workloadLosses`).
    func losesWorkload(_ node: NodeName) -> Bool {
        lock.withLock {
            guard state.cutFromWorkload.contains(node) else { return false }
            state.workloadLosses[node, default: 0] += 1
            return true
        }
    }

    /// A process that can take a control call now (not killed, not stopped).
    func isReachable(_ node: NodeName) -> Bool {
        lock.withLock { !state.crashed.contains(node) && !state.paused.contains(node) }
    }

    static func linkFault(_ behaviour: LinkBehaviour) -> LinkFault {
        LinkFault(dropProbability: behaviour.dropProbability, duplicateProbability: behaviour.duplicateProbability,
                  latencyMin: behaviour.latencyMin, latencyMax: behaviour.latencyMax, reorderProbability: behaviour.reorderProbability)
    }

    /// The whole fault state of one node's process. A partition or an isolation always wins over
    /// a link fault on the same link.
    func command(for node: NodeName) -> ApplyFaults {
        let state = current
        let base = state.healed ? scenario.network.link.healed : scenario.network.link
        var rules = FaultFilter.Rules(fallback: Self.linkFault(base), exempt: exempt)
        for (link, behaviour) in state.links where link.from == node { rules.links[link.to.rawValue] = Self.linkFault(behaviour) }
        for pair in state.partitions {
            if node == pair.from { rules.links[pair.to.rawValue] = .partition }
            if node == pair.to { rules.links[pair.from.rawValue] = .partition }
        }
        for pair in state.oneWay where node == pair.from { rules.links[pair.to.rawValue] = .partition }
        for target in state.isolated where target != node { rules.links[target.rawValue] = .partition }
        if state.isolated.contains(node) {
            rules.fallback = .partition
            for key in rules.links.keys { rules.links[key] = .partition }
        }
        let isProvider = node == NodeName(ServiceName.swishpay)
        return ApplyFaults(rules: rules, clockSkew: state.skews[node] ?? .zero,
                           providerDeclineRate: isProvider ? (state.declineRate ?? scenario.payment.declineRate) : nil,
                           providerProcessingTime: isProvider ? (state.processingTime ?? scenario.payment.processingTime) : nil,
                           eventVersions: state.eventVersions)
    }
}

/// The runner's control calls to the services.
struct Control: Sendable {
    let transport: ZeroMQTransport
    let clock: SystemClock
    let journal: Journal
    /// The largest clock skew the scenario gives a node. A node whose clock runs ahead drops
    /// requests whose deadline it thinks has passed, as it should; the runner's own calls must
    /// still reach it (to take the skew away), so they carry that much more time.
    let skewAllowance: Duration

    private func metadata(_ timeout: Duration) -> CallMetadata {
        CallMetadata(deadline: clock.now + timeout + skewAllowance, correlationId: "runner-control")
    }

    func report(_ service: ServiceName, timeout: Duration = .seconds(1)) async throws -> ControlReport {
        try await transport.call(ReadControlReport(), to: NodeName(service), metadata: metadata(timeout))
    }

    /// Sends each reachable service its whole fault state (idempotent), a few times if need be.
    func push(_ plan: FaultPlan, to services: [ServiceName]) async {
        await withTaskGroup(of: Void.self) { group in
            for service in services where plan.isReachable(NodeName(service)) {
                let command = plan.command(for: NodeName(service))
                group.addTask {
                    for attempt in 1...3 {
                        do {
                            _ = try await transport.call(command, to: NodeName(service), metadata: metadata(.seconds(1)))
                            return
                        } catch {
                            if attempt == 3 { journal.note("could not set the faults of \(service): \(error)") }
                        }
                    }
                }
            }
        }
    }
}
