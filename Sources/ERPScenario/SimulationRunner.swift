import ERPCore
import ERPReports
import ERPServices
import ERPSimulation
import ERPTransport
import Foundation

/// Runs a scenario on the simulator: builds the world, starts the services in order, drives the
/// workload and the fault schedule through the chaos phase, heals, lets every flow finish, then
/// judges the recorded state with the checkers.
public struct SimulationRunner {
    public var scenario: Scenario
    public var fixtures: Fixtures
    public var seed: UInt64
    /// Where summary.json, summary.md, trace.log and the databases go.
    public var outputDirectory: String
    public var logToStandardError = false
    /// How the reproduce command names the tool (the path it was started by, when known).
    public var executableName = "erp"

    public init(scenario: Scenario, fixtures: Fixtures, seed: UInt64, outputDirectory: String) {
        self.scenario = scenario
        self.fixtures = fixtures
        self.seed = seed
        self.outputDirectory = outputDirectory
    }

    public func run() throws -> RunSummary {
        let wallStart = ContinuousClock.now
        let fm = FileManager.default
        let databaseDirectory = outputDirectory + "/db"
        try fm.createDirectory(atPath: databaseDirectory, withIntermediateDirectories: true)
        let trace = try SimTrace(writingTo: outputDirectory + "/trace.log")
        let recovered = RecoveryCount()
        trace.observer = { line in
            // "order recovering 37 sagas": what each restart found unfinished and drove on.
            if let n = OrderService.recoveredSagaCount(in: line) { recovered.sagas += n }
        }
        let world = SimWorld(seed: seed, storageDirectory: databaseDirectory, trace: trace)
        world.logToStandardError = logToStandardError
        world.network.defaultLink = scenario.network.link
        world.record("scenario \(scenario.name) seed \(seed)")

        let settings = scenario.serviceSettings(fixtures: fixtures)
        let services = ServiceCatalog.startOrder
        let routes = ServiceCatalog.routes(for: services)
        for service in services {
            world.addNode(NodeName(service), serving: service) { [settings] runtime in
                try ServiceCatalog.make(service, runtime: runtime, settings: settings, routes: routes)
            }
        }
        let clientNode = world.addNode("client")

        // Start in dependency order, a moment apart, before any order arrives.
        for (i, service) in services.enumerated() {
            world.schedule(after: .milliseconds(Int64(i))) { world.node(serving: service)!.start() }
        }
        let warmUp = Duration.milliseconds(Int64(services.count) + 10)
        world.run(until: warmUp)

        clientNode.start()
        let chaosEnd = warmUp + scenario.duration
        let client = OrderWorkloadClient(runtime: clientNode.runtime!, api: TransportOrderAPI(transport: clientNode.runtime!.transport),
                                         workload: scenario.workload, fixtures: fixtures, until: world.now + scenario.duration)
        client.start()
        var faultLog: [String] = []
        for fault in scenario.faults {
            faultLog.append(schedule(fault, in: world, offset: warmUp, chaosEnd: chaosEnd, provider: settings.provider))
        }
        world.schedule(at: chaosEnd) { [provider = settings.provider, baseline = scenario.payment] in
            world.record("heal phase begins")
            provider.declineRate = baseline.declineRate
            provider.processingTime = baseline.processingTime
            for node in world.allNodes { if node.clockSkew != .zero { world.setClockSkew(node.name, .zero) } }
            world.resetLinkOverrides()
            world.heal()
        }
        world.run(until: chaosEnd + scenario.heal)
        world.record("run ends")
        let stats = world.stats
        let starts = world.allNodes.filter { $0.service != nil }.map { ($0.name.rawValue, $0.startCount) }
        world.stopAll()
        let traceHash = trace.finish()

        var summary = RunSummary(scenario: scenario.name, seed: seed, mode: "simulation",
                                 reproduce: reproduceCommand, chaos: scenario.duration, heal: scenario.heal)
        summary.traceHash = traceHash
        summary.traceLines = trace.lineCount
        summary.faults = faultLog
        summary.recoveredSagas = recovered.sagas
        for (path, counts) in settings.resilienceMetrics.paths { summary.resilience[path] = RunSummary.PathResilience(counts) }
        for (method, latency) in world.callMetrics?.latencySummaries() ?? [:] { summary.latency["rpc " + method] = latency }
        summary.rateLimited = settings.resilienceMetrics.rateLimited
        summary.defects = scenario.defects.enabledNames
        summary.network.sent = stats.messagesSent
        summary.network.delivered = stats.messagesDelivered
        summary.network.dropped = stats.messagesDropped
        summary.network.duplicated = stats.messagesDuplicated
        for (name, count) in starts { summary.serviceStarts[name] = count }

        try Self.judge(into: &summary, scenario: scenario, history: client.records, databaseDirectory: databaseDirectory)
        let wall = ContinuousClock.now - wallStart
        summary.wallSeconds = (wall.seconds * 1000).rounded() / 1000
        try Self.write(summary, to: outputDirectory)
        return summary
    }

    /// What every runner does at the end, whatever the backend: order latency from the client's
    /// history, the invariants judged from the databases, the scenario's expectations.
    public static func judge(into summary: inout RunSummary, scenario: Scenario, history records: [ClientRecord],
                             databaseDirectory: String) throws {
        let history = records.sorted { $0.requestKey.localizedStandardCompare($1.requestKey) == .orderedAscending }
        var placement = LatencyRecorder()
        for record in history {
            if let done = record.completedAt, record.outcome == .confirmed || record.outcome == .cancelled {
                placement.record(done - record.scheduledAt)
            }
        }
        summary.latency["orderPlacement"] = placement.summary
        try ConsistencyChecker(databaseDirectory: databaseDirectory, history: history).check(into: &summary)
        if summary.orders.confirmed < scenario.expect.minConfirmed {
            summary.expectationFailures.append("at least \(scenario.expect.minConfirmed) confirmed orders, got \(summary.orders.confirmed)")
        }
        if summary.orders.cancelled < scenario.expect.minCancelled {
            summary.expectationFailures.append("at least \(scenario.expect.minCancelled) cancelled orders, got \(summary.orders.cancelled)")
        }
    }

    /// Writes summary.json and summary.md into `directory`.
    public static func write(_ summary: RunSummary, to directory: String) throws {
        try summary.json().write(to: URL(fileURLWithPath: directory + "/summary.json"))
        try Data(summary.markdown.utf8).write(to: URL(fileURLWithPath: directory + "/summary.md"))
    }

    final class RecoveryCount: @unchecked Sendable { var sagas = 0 }

    /// The command the report gives to run this again (the caller may spell it out in full).
    public var reproduceCommand: String {
        get { reproduceOverride ?? "\(executableName) run \(scenario.path.isEmpty ? scenario.name : scenario.path) --seed \(seed)" }
        set { reproduceOverride = newValue }
    }
    private var reproduceOverride: String?

    /// Puts one fault on the world's timeline; returns its description for the report.
    private func schedule(_ fault: ScheduledFault, in world: SimWorld, offset: Duration, chaosEnd: Duration,
                          provider: ProviderKnobs) -> String {
        let start = offset + fault.at
        let end = fault.duration.map { min(start + $0, chaosEnd) }
        let apply: @Sendable () -> Void
        var revert: (@Sendable () -> Void)?
        switch fault.kind {
        case .partition(let a, let b):
            apply = { world.partition(a, b) }
            revert = { world.healPartition(a, b) }
        case .partitionOneWay(let from, let to):
            apply = { world.partitionOneWay(from: from, to: to) }
            revert = { world.healPartitionOneWay(from: from, to: to) }
        case .isolate(let name):
            apply = { world.isolate(name) }
            revert = { world.rejoin(name) }
        case .crash(let name, let restartAfter):
            apply = { world.crash(name) }
            if let restartAfter {
                let restartAt = start + restartAfter
                world.schedule(at: restartAt) { world.restart(name) }
            }
        case .pause(let name):
            apply = { world.pause(name) }
            revert = { world.resume(name) }
        case .clockSkew(let name, let skew):
            apply = { world.setClockSkew(name, skew) }
            revert = { world.setClockSkew(name, .zero) }
        case .link(let from, let to, let settings):
            apply = { world.setLink(from: from, to: to, settings) }
            revert = { world.setLink(from: from, to: to, nil) }
        case .providerDelay(let delay):
            let baseline = scenario.payment.processingTime
            apply = { world.record("fault swishpay answers in \(delay.shortDescription)"); provider.processingTime = delay }
            revert = { world.record("fault swishpay answers in \(baseline.shortDescription) again"); provider.processingTime = baseline }
        case .providerDeclineRate(let rate):
            let baseline = scenario.payment.declineRate
            apply = { world.record("fault swishpay decline rate \(rate)"); provider.declineRate = rate }
            revert = { world.record("fault swishpay decline rate back to \(baseline)"); provider.declineRate = baseline }
        }
        world.schedule(at: start, apply)
        if let revert, let end { world.schedule(at: end, revert) }
        return fault.summaryText
    }
}

extension RunSummary.PathResilience {
    /// A call path's figures as the report shows them.
    public init(_ counts: ResilienceMetrics.PathCounts) {
        self.init(calls: counts.calls, attempts: counts.attempts, retries: counts.retries, failedCalls: counts.failedCalls,
                  breakerRejections: counts.breakerRejections, breakerOpened: counts.opened, breakerHalfOpened: counts.halfOpened,
                  breakerClosed: counts.closed, breakerState: counts.lastState)
    }
}
