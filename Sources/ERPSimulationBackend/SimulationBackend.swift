// ERPSimulationBackend: the scenario runner's simulation adapter. It puts every service of the
// catalogue on one SimWorld, drives the workload from a client node, schedules the fault timeline
// on virtual time through `SimFaultInjector`, and hands the runner the trace hash and the world's
// counters. Twin of ERPZeroMQBackend's `ZeroMQBackend`.
import ERPCore
import ERPReports
import ERPResilience
import ERPScenario
import ERPServices
import ERPSimulation
import ERPTransport
import Foundation

/// A scenario on the deterministic simulator. Virtual time: a phase takes as long as the CPU
/// needs, and the same seed gives the same trace in any process. The world runs on a thread of
/// its own for each phase, never on the cooperative pool, so asynchronous work beside it (tests
/// running in parallel) is not starved while it computes.
public final class SimulationBackend: ScenarioBackend, @unchecked Sendable {
    // @unchecked Sendable: the runner calls one phase at a time; the world is touched by one
    // thread at a time (the phase's).
    public let mode = RunMode.simulation
    public let world: SimWorld
    let scenario: Scenario
    let trace: SimTrace
    let databaseDirectory: String
    let settings: ServiceSettings
    let recovered = RecoveryCount()
    private let simInjector: SimFaultInjector
    public var injector: any FaultInjector { simInjector }
    private var client: OrderWorkloadClient?
    private var devices: DeviceWorkloadClient?
    private var store: StoreWorkloadClient?
    private var chaosStart: Timestamp?
    private var clientNode: SimNode?
    private var warmUp: Duration = .zero

    /// A run offering more orders than this keeps its databases in files (unless it has disk
    /// faults). Whole sagas take about 10 KB of database an order: 100,000 of them held 1,014 MiB
    /// (peak RSS) on the simulated disks against 131 MiB on files, so past 50,000 the memory the
    /// disks would take outgrows what the rest of a run needs (and the 512 MiB a run aims at).
    public static let ordersInMemoryMax = 50_000.0

    /// Where a run of `scenario` keeps its databases. Throws for `filesOnDisk` with a disk fault.
    public static func storage(for scenario: Scenario, filesOnDisk: Bool) throws -> SimStorage {
        let diskFault = scenario.firstSimulationOnlyFault
        if filesOnDisk, let diskFault {
            throw StorageChoice(what: "\(diskFault) needs the simulated disks; run without --files-on-disk")
        }
        // A run that offers more orders than memory comfortably holds databases for (about 10 KB
        // per order) keeps files unless it needs the simulated disks.
        let large = scenario.workload.ratePerSecond * scenario.duration.seconds > ordersInMemoryMax && diskFault == nil
        if filesOnDisk || large { return .files }
        // Disks that cannot fail cost less: no WAL, no syncs (a scenario that weakens a service's
        // `synchronous` means it for a power loss, and keeps the disks that model one).
        if diskFault == nil && scenario.durability.isEmpty { return .memoryWithoutDiskFaults }
        let powerLoss = scenario.faults.contains {
            switch $0.kind { case .powerLoss, .powerCut: true; default: false }
        }
        return .memory(modelsPowerLoss: powerLoss)
    }

    /// A world for `scenario` at `seed`, writing trace.log and the databases (db/) into
    /// `outputDirectory`. `filesOnDisk`: the databases are ordinary files from the start, for runs
    /// whose databases outgrow memory (the default past `ordersInMemoryMax` orders); a scenario
    /// with disk faults needs them in memory.
    public init(scenario: Scenario, seed: UInt64, fixtures: Fixtures, outputDirectory: String, logToStandardError: Bool = false,
                filesOnDisk: Bool = false) throws {
        self.scenario = scenario
        databaseDirectory = outputDirectory + "/db"
        try FileManager.default.createDirectory(atPath: databaseDirectory, withIntermediateDirectories: true)
        if let problem = ServiceCatalog.databaseFolderProblem(databaseDirectory) { throw StorageChoice(what: "the databases' folder \(problem): choose a shorter --out") }
        trace = try SimTrace(writingTo: outputDirectory + "/trace.log")
        trace.observer = { [recovered] line in
            // "order recovering 37 sagas": what each restart found unfinished and drove on.
            if let n = OrderService.recoveredSagaCount(inUTF8: line) { recovered.sagas += n }
        }
        world = SimWorld(seed: seed, storageDirectory: databaseDirectory, trace: trace,
                         storage: try Self.storage(for: scenario, filesOnDisk: filesOnDisk))
        world.logToStandardError = logToStandardError
        world.network.defaultLink = LinkSettings(scenario.network.link)
        for (method, time) in scenario.network.serviceTimes { world.serviceTimes[method] = time }
        world.record("scenario \(scenario.name) seed \(seed)")
        settings = scenario.serviceSettings(fixtures: fixtures)
        simInjector = SimFaultInjector(world: world, provider: settings.provider, eventVersions: settings.eventVersions,
                                       baseline: scenario.payment)
    }

    /// A scenario and a storage choice that do not go together.
    public struct StorageChoice: Error, CustomStringConvertible {
        public var what: String
        public var description: String { what }
    }

    public func startServices(_ services: [ServiceName]) async throws {
        world.addServices(services, settings: settings)
        for (service, synchronous) in scenario.durability { world.node(serving: service)?.synchronous = synchronous }
        for service in services {
            if let limit = scenario.resilience.incomingLimit(of: service) { world.node(serving: service)?.incomingLimit = RateLimiter(settings: limit) }
        }
        clientNode = world.addNode("client")
        for link in scenario.network.links {
            world.setBaseLink(from: NodeName(link.from), to: NodeName(link.to), LinkSettings(link.behaviour))
        }
        // Start in dependency order, a moment apart, before any order arrives.
        for (i, service) in services.enumerated() {
            world.schedule(after: .milliseconds(Int64(i))) { [world] in world.node(serving: service)!.start() }
        }
        warmUp = .milliseconds(Int64(services.count) + 10)
        await onWorldThread { [world, warmUp] in world.run(until: warmUp) }
    }

    public func startWorkload(_ scenario: Scenario, fixtures: Fixtures, seed: UInt64) async throws {
        guard let clientNode else { preconditionFailure("services start before the workload") }
        clientNode.start()
        let runtime = clientNode.runtime!
        chaosStart = world.now
        let client = OrderWorkloadClient(runtime: runtime, api: TransportOrderAPI(transport: runtime.transport),
                                         workload: scenario.workload, fixtures: fixtures, until: world.now + scenario.duration)
        client.start()
        self.client = client
        let devices = DeviceWorkloadClient(runtime: runtime, link: TransportDeviceLink(transport: runtime.transport), workload: scenario.devices, fixtures: fixtures,
                                           chaosEnd: world.now + scenario.duration,
                                           until: world.now + scenario.duration + scenario.heal - scenario.devices.heartbeat)
        devices.start()
        self.devices = devices
        let store = StoreWorkloadClient(runtime: runtime, api: TransportOrderAPI(transport: runtime.transport), workload: scenario.store,
                                        fixtures: fixtures, until: world.now + scenario.duration)
        store.start()
        self.store = store
    }

    public func runChaosPhase(_ timeline: [FaultStep], chaos: Duration) async {
        // The whole schedule goes on the world's timeline before the phase runs: faults happen at
        // their virtual times, between the services' own events, in the same order in every run.
        for step in timeline {
            world.schedule(at: warmUp + step.at) { [simInjector] in step.apply(to: simInjector) }
        }
        let chaosEnd = warmUp + chaos
        world.schedule(at: chaosEnd) { [simInjector] in simInjector.heal() }
        await onWorldThread { [world] in world.run(until: chaosEnd) }
    }

    public func runHealPhase(_ heal: Duration) async -> Duration {
        let end = world.elapsed + heal
        await onWorldThread { [world] in
            world.run(until: end)
            world.record("run ends")
        }
        return heal
    }

    public func finish() async throws -> BackendOutcome {
        let stats = world.stats
        let starts = world.allNodes.filter { $0.service != nil }.map { ($0.name.rawValue, $0.startCount) }
        world.stopAll()
        var outcome = BackendOutcome(history: client?.history ?? [], databaseDirectory: databaseDirectory)
        outcome.devices = devices?.records ?? []
        outcome.store = store?.outcome ?? StoreOutcome()
        outcome.chaosStart = chaosStart
        outcome.clockSkews = world.clockSkews
        outcome.traceHash = trace.finish()
        outcome.traceLines = trace.lineCount
        outcome.recoveredSagas = recovered.sagas
        for (name, count) in starts { outcome.serviceStarts[name] = count }
        let metrics = settings.resilienceMetrics
        let latency = world.callMetrics?.latencySummaries() ?? [:]
        let acted = world.defectsActed
        // The tasks the world leaves suspended keep it alive: let go of what it holds.
        world.tearDown()
        // The history is the outcome's now: the client's own copy need not outlive the world.
        client = nil
        outcome.fill = { summary in
            for (path, counts) in metrics.paths { summary.resilience[path] = RunSummary.PathResilience(counts) }
            for (method, summaryOfMethod) in latency { summary.latency["rpc " + method] = summaryOfMethod }
            summary.rateLimited = metrics.rateLimited
            if !summary.defects.isEmpty {
                var counts: [String: Int] = [:]
                for name in summary.defects { counts[name] = acted[name] ?? 0 }
                summary.defectsActed = counts
            }
            summary.network.sent = stats.messagesSent
            summary.network.delivered = stats.messagesDelivered
            summary.network.dropped = stats.messagesDropped
            summary.network.duplicated = stats.messagesDuplicated
        }
        return outcome
    }

    /// Runs `body` on a thread of its own and waits for it: a world computes for seconds at a
    /// time, which must not hold one of the cooperative pool's few threads.
    private func onWorldThread(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                body()
                done.resume()
            }
            thread.name = "sim-world"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    final class RecoveryCount: @unchecked Sendable { var sagas = 0 }
}

extension LinkSettings {
    /// The simulator's form of a scenario's link behaviour.
    init(_ behaviour: LinkBehaviour) {
        self.init(latency: behaviour.latency, dropProbability: behaviour.dropProbability,
                  duplicateProbability: behaviour.duplicateProbability, reorderProbability: behaviour.reorderProbability)
    }
}
