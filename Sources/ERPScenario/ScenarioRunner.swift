import ERPCore
import ERPReports
import ERPServices
import ERPStorage
import Foundation

/// The backends a scenario runs on.
public enum RunMode: String, CaseIterable, Sendable {
    /// Every service in one process on the deterministic simulator: virtual time, seeded
    /// randomness; the same seed gives the same trace.
    case simulation
    /// Every service its own process over ZeroMQ, real time, the workload as real HTTP.
    case zmq
}

/// What the runner needs from a backend. The runner plays the same phases on each:
/// services up → workload → chaos phase (the fault timeline through the backend's
/// `FaultInjector`) → heal → heal phase → judge from the databases. Two adapters implement it:
/// `SimulationBackend` (ERPSimulationBackend) and `ZeroMQBackend` (ERPZeroMQBackend).
public protocol ScenarioBackend: AnyObject {
    var mode: RunMode { get }
    /// Where the backend's faults land.
    var injector: any FaultInjector { get }
    /// Starts `services` (dependencies first) and returns once they serve.
    func startServices(_ services: [ServiceName]) async throws
    /// Starts the workloads of `scenario`: open-loop orders for its chaos phase, and its devices
    /// (reporting into the heal phase).
    func startWorkload(_ scenario: Scenario, fixtures: Fixtures, seed: UInt64) async throws
    /// The chaos phase: each step of `timeline` at its time through `injector` (awaiting
    /// `propagate()` after each), then `injector.heal()` at its end.
    func runChaosPhase(_ timeline: [FaultStep], chaos: Duration) async
    /// The heal phase: no new orders, every flow has `heal` to finish. Returns how long it lasted.
    func runHealPhase(_ heal: Duration) async -> Duration
    /// Stops everything and hands over what the run left: the client's history, where the
    /// databases are, and the backend's own figures.
    func finish() async throws -> BackendOutcome
}

/// What a backend hands the runner at the end of a run.
public struct BackendOutcome: Sendable {
    public var history: [ClientRecord]
    /// What each device saw (empty without a device workload).
    public var devices: [DeviceRecord] = []
    /// Vends, campaigns and reads (empty without a store workload).
    public var store = StoreOutcome()
    /// When the chaos phase began, on the clock of the history's timestamps.
    public var chaosStart: Timestamp?
    /// The services' databases, closed, for the checker.
    public var databaseDirectory: String
    /// Incarnations per service.
    public var serviceStarts: [String: Int] = [:]
    /// Unfinished sagas that restarted order services found and drove on.
    public var recoveredSagas = 0
    /// Simulation only: SHA-256 of the trace and its line count.
    public var traceHash: String?
    public var traceLines = 0
    /// The clock skews the run's faults set, with when (true time): event hops are timed on it.
    public var clockSkews = ClockSkews()
    /// Figures only this backend has (network counters, per-path resilience, per-method latency).
    public var fill: @Sendable (inout RunSummary) -> Void = { _ in }

    public init(history: [ClientRecord], databaseDirectory: String) {
        self.history = history
        self.databaseDirectory = databaseDirectory
    }
}

/// Runs a scenario on a backend and writes its report: the one runner of every mode.
public struct ScenarioRunner: Sendable {
    public var scenario: Scenario
    public var fixtures: Fixtures
    public var seed: UInt64
    /// Where summary.json and summary.md go (the backend writes the rest beside them).
    public var outputDirectory: String
    /// The command the report gives to run this again.
    public var reproduce: String

    /// The digests of the scenario and fixtures files, whose copies the caller put in the
    /// report's inputs/ folder (`RunSummary.inputs`); nil: none kept.
    public var inputs: RecordedInputs?

    public init(scenario: Scenario, fixtures: Fixtures, seed: UInt64, outputDirectory: String, reproduce: String) {
        self.scenario = scenario
        self.fixtures = scenario.fixturesForRun(fixtures)
        self.seed = seed
        self.outputDirectory = outputDirectory
        self.reproduce = reproduce
    }

    public func run(on backend: any ScenarioBackend) async throws -> RunSummary {
        let wallStart = ContinuousClock.now
        try await backend.startServices(ServiceCatalog.startOrder)
        try await backend.startWorkload(scenario, fixtures: fixtures, seed: seed)
        await backend.runChaosPhase(scenario.faultTimeline, chaos: scenario.duration)
        let heal = await backend.runHealPhase(scenario.heal)
        var outcome = try await backend.finish()
        // One copy of the client's records, in request-key order, for the judge and the timeline
        // alike: a million orders' records are some 80 MB a copy, and three copies alive at once
        // (the client's, the backend's, the sorted one) put a million-order run past 512 MiB.
        let history = Self.inRequestKeyOrder(outcome.history)
        outcome.history = []

        var summary = RunSummary(scenario: scenario.name, seed: seed, mode: backend.mode.rawValue, reproduce: reproduce,
                                 chaos: scenario.duration, heal: heal)
        summary.scenarioPath = scenario.path
        summary.startedIn = FileManager.default.currentDirectoryPath
        summary.sqliteVersion = SQLiteTuning.libraryVersion
        summary.inputs = inputs
        summary.build = RecordedBuild.current()
        summary.healFloorMilliseconds = scenario.healFloor.nanoseconds / 1_000_000
        summary.traceHash = outcome.traceHash
        summary.traceLines = outcome.traceLines
        summary.faults = scenario.faultLines
        summary.defects = scenario.defects.enabledNames
        summary.stockTimes = scenario.stockTimes == 1 ? nil : scenario.stockTimes
        summary.weakenedDurability = scenario.durability.isEmpty ? nil : scenario.durability.map { "\($0.service.rawValue): \($0.synchronous.rawValue)" }
        summary.recoveredSagas = outcome.recoveredSagas
        for (service, count) in outcome.serviceStarts { summary.serviceStarts[service] = count }
        outcome.fill(&summary)
        try Self.judge(into: &summary, scenario: scenario, history: history, devices: outcome.devices, store: outcome.store,
                       clockSkews: outcome.clockSkews, fixtures: fixtures, databaseDirectory: outcome.databaseDirectory)
        let timeline = Self.timeline(scenario: scenario, history: history, chaosStart: outcome.chaosStart, heal: heal)
        Self.phaseLatency(into: &summary, timeline: timeline)
        let chaosSeconds = scenario.duration.seconds
        func rate(_ n: Int) -> Double { chaosSeconds > 0 ? (Double(n) / chaosSeconds * 100).rounded() / 100 : 0 }
        summary.openLoop.targetPerSecond = scenario.workload.ratePerSecond
        summary.openLoop.offeredPerSecond = rate(history.count)
        summary.openLoop.completedPerSecond = rate(timeline.points.filter {
            ($0.outcome == "confirmed" || $0.outcome == "cancelled") && $0.t + $0.milliseconds / 1000 < chaosSeconds
        }.count)
        summary.wallSeconds = ((ContinuousClock.now - wallStart).seconds * 1000).rounded() / 1000
        // In the summary handed back too, not only in the files: `bench scenario` read it from the
        // returned summary and said 0 where `erp run` exited 4 (a performance checker's trial).
        summary.exitStatus = summary.verdictExitStatus
        try Self.write(summary, to: outputDirectory)
        try Self.writeHistory(history, to: outputDirectory + "/orders.csv")
        try Data(HTMLReport.render(summary, timeline: timeline).utf8).write(to: URL(fileURLWithPath: outputDirectory + "/report.html"))
        return summary
    }

    /// What every run ends with, whatever the backend: order latency from the client's history,
    /// the invariants judged from the databases, the scenario's expectations.
    /// `history`: the client's records in request-key order (`inRequestKeyOrder`).
    public static func judge(into summary: inout RunSummary, scenario: Scenario, history: [ClientRecord],
                             devices: [DeviceRecord] = [], store: StoreOutcome = StoreOutcome(), clockSkews: ClockSkews = ClockSkews(),
                             fixtures: Fixtures? = nil, databaseDirectory: String) throws {
        var placement = LatencyRecorder()
        for record in history {
            if let done = record.completedAt, record.outcome == .confirmed || record.outcome == .cancelled {
                placement.record(done - record.scheduledAt)
            }
        }
        summary.latency["orderPlacement"] = placement.summary
        var vend = LatencyRecorder()
        for record in store.vends {
            if let done = record.completedAt, record.outcome == .dispensed || record.outcome == .refused { vend.record(done - record.scheduledAt) }
        }
        if !store.vends.isEmpty { summary.latency["vend"] = vend.summary }
        if store.reads > 0 { summary.latency["read"] = store.readLatency.summary }
        summary.store.campaignsCreated = store.campaignsCreated
        summary.store.campaignsFailed = store.campaignsFailed
        summary.store.reads = store.reads
        summary.store.readsFailed = store.readsFailed
        var checker = ConsistencyChecker(databaseDirectory: databaseDirectory, history: history)
        checker.devices = devices
        checker.devicesMayFallQuietBeforeTheEnd = summary.mode == RunMode.zmq.rawValue
        checker.vends = store.vends
        checker.clockSkews = clockSkews
        checker.fixtures = fixtures
        try checker.check(into: &summary)
        // Counts the databases did not give cannot meet or miss an expectation ("got 0" measured
        // nothing); the run fails on databases-intact.
        guard summary.countsNotJudged == nil else {
            if !scenario.expect.asksNothing {
                summary.expectationFailures.append("not judged: a database is damaged (databases-intact), and the expectations count what the databases hold")
            }
            return
        }
        if summary.orders.confirmed < scenario.expect.minConfirmed {
            summary.expectationFailures.append("at least \(scenario.expect.minConfirmed) confirmed orders, got \(summary.orders.confirmed)")
        }
        if let most = scenario.expect.maxCancelled, summary.orders.cancelled > most {
            summary.expectationFailures.append("at most \(most) cancelled orders, got \(summary.orders.cancelled)")
        }
        if !scenario.expect.cancelReasons.isEmpty {
            for (reason, count) in summary.orders.cancelReasons.sorted(by: { $0.key < $1.key }) where !scenario.expect.cancelReasons.contains(reason) {
                summary.expectationFailures.append("orders cancelled only for \(scenario.expect.cancelReasons.joined(separator: ", ")); \(count) for \(reason)")
            }
        }
        if summary.vends.dispensed < scenario.expect.minDispensed {
            summary.expectationFailures.append("at least \(scenario.expect.minDispensed) vends dispensed, got \(summary.vends.dispensed)")
        }
        for (pricing, count) in scenario.expect.minPriced where summary.store.pricing[pricing, default: 0] < count {
            summary.expectationFailures.append("at least \(count) orders priced at \(pricing), got \(summary.store.pricing[pricing, default: 0])")
        }
        for expected in scenario.expect.onTheBus where (summary.eventVersions[expected] ?? 0) == 0 {
            summary.expectationFailures.append("\(expected) events on the bus, found none")
        }
        if summary.orders.cancelled < scenario.expect.minCancelled {
            summary.expectationFailures.append("at least \(scenario.expect.minCancelled) cancelled orders, got \(summary.orders.cancelled)")
        }
    }

    /// `records` in the order of their request keys as Finder and `localizedStandardCompare` sort
    /// them ("req-9" before "req-10"). The workload's keys are one prefix and a number, which sort
    /// by the number: comparing those as numbers costs a hundredth of the locale-aware compare,
    /// which was 1.7 % of a simulated happy-path run. Any other keys are sorted the old way.
    static func inRequestKeyOrder(_ records: [ClientRecord]) -> [ClientRecord] {
        func localeAware() -> [ClientRecord] {
            records.sorted { $0.requestKey.localizedStandardCompare($1.requestKey) == .orderedAscending }
        }
        guard let first = records.first, let prefix = numberedKeyPrefix(first.requestKey) else { return localeAware() }
        // Numbers and positions sorted, 16 bytes an order, rather than the records themselves
        // with their keys (112 bytes an order, a copy more of a million-order history).
        var keyed: [(number: UInt64, index: Int)] = []
        keyed.reserveCapacity(records.count)
        for (index, record) in records.enumerated() {
            let key = record.requestKey
            guard numberedKeyPrefix(key) == prefix else { return localeAware() }
            let digits = key.utf8.dropFirst(prefix.utf8.count)
            // Digits without leading zeros, so their numbers order them; past 18 digits a UInt64 may not hold one.
            guard digits.count <= 18 else { return localeAware() }
            keyed.append((digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }, index))
        }
        keyed.sort { a, b in a.number != b.number ? a.number < b.number : a.index < b.index }
        return keyed.map { records[$0.index] }
    }

    /// The part of `key` before its number, when `key` is digit-free text then a number with no
    /// leading zero (`req-12`); nil for any other key.
    static func numberedKeyPrefix(_ key: String) -> Substring? {
        let utf8 = key.utf8
        guard let firstDigit = utf8.firstIndex(where: { $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let digits = utf8[firstDigit...]
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), digits.first != 0x30 || digits.count == 1 else { return nil }
        return key[..<firstDigit]
    }

    /// Each order's latency at its send time, the fault windows and the phases, from the start of
    /// the chaos phase (the first order's send time when the backend does not say).
    public static func timeline(scenario: Scenario, history: [ClientRecord], chaosStart: Timestamp?, heal: Duration) -> RunTimeline {
        let start = chaosStart ?? history.map(\.scheduledAt).min() ?? Timestamp.simulationEpoch
        let points = history.compactMap { record -> RunTimeline.Point? in
            guard let done = record.completedAt else { return nil }
            return RunTimeline.Point(t: (record.scheduledAt - start).seconds, milliseconds: (done - record.scheduledAt).seconds * 1000,
                                     outcome: record.outcome.rawValue)
        }.sorted { $0.t < $1.t }
        let chaos = scenario.duration.seconds
        let ended = scenario.pausesEndedEarly
        let windows = scenario.faults.enumerated().map { i, fault -> RunTimeline.Window in
            let begin = fault.at.seconds
            var end = chaos
            if let length = fault.duration, fault.kind.ends { end = min(chaos, begin + length.seconds) }
            if let restart = fault.kind.restart { end = min(chaos, begin + restart.after.seconds) }
            if let cut = ended[i] { end = min(end, cut.at.seconds) }
            return RunTimeline.Window(start: begin, end: max(end, begin), label: fault.kind.summaryText)
        }
        return RunTimeline(points: points, faults: windows, chaosSeconds: chaos, healSeconds: heal.seconds)
    }

    /// Order placement split by phase: sent before the first fault, while a fault was on, between
    /// faults (after the first, none on), or in the heal phase.
    static func phaseLatency(into summary: inout RunSummary, timeline: RunTimeline) {
        guard !timeline.faults.isEmpty else { return }
        let first = timeline.faults.map(\.start).min()!
        var phases: [String: LatencyRecorder] = [:]
        for p in timeline.points where p.outcome == "confirmed" || p.outcome == "cancelled" {
            let phase: String
            if p.t >= timeline.chaosSeconds { phase = "heal" }
            else if p.t < first { phase = "before faults" }
            else if timeline.faults.contains(where: { $0.start <= p.t && p.t < $0.end }) { phase = "under faults" }
            else { phase = "between faults" }
            phases[phase, default: LatencyRecorder()].record(.nanoseconds(Int64(p.milliseconds * 1e6)))
        }
        for (phase, recorder) in phases { summary.latency["orderPlacement (\(phase))"] = recorder.summary }
    }

    /// The most client records `orders.csv` holds: past it (a million-order run's would be 70 MB)
    /// the file is not written.
    public static let historyRowsMax = 200_000

    /// The client's records, one order a line in request-key order: what `orderPlacement` is
    /// computed from, so that a reader can recompute its percentiles and find a slow order's id
    /// (a report reader's trial could not: the trace's client calls carry neither the request key
    /// nor the order, and retries could not be told from new orders). Times in milliseconds since
    /// the epoch of the run's clock (virtual in simulation); `latency_ms` is empty for an order
    /// with no outcome.
    static func writeHistory(_ history: [ClientRecord], to path: String) throws {
        guard history.count <= historyRowsMax else { return }
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let file = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        defer { try? file.close() }
        // Milliseconds to the microsecond, in integers (String(format:) cost a few µs a field).
        func ms(_ nanoseconds: Int64) -> String {
            let us = nanoseconds / 1_000, sign = us < 0 ? "-" : "", magnitude = us.magnitude
            let fraction = String(magnitude % 1_000)
            return sign + String(magnitude / 1_000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
        }
        var chunk = "request_key,scheduled_ms,completed_ms,latency_ms,outcome,order_id,attempts\n"
        for (i, record) in history.enumerated() {
            let scheduled = record.scheduledAt.nanosecondsSinceEpoch
            let completed = record.completedAt?.nanosecondsSinceEpoch
            chunk += record.requestKey.csvField + "," + ms(scheduled) + "," + (completed.map(ms) ?? "") + ","
                + (completed.map { ms($0 - scheduled) } ?? "") + "," + record.outcome.rawValue + "," + (record.orderId?.csvField ?? "")
                + ",\(record.attempts)\n"
            if i % 10_000 == 9_999 { try file.write(contentsOf: Data(chunk.utf8)); chunk = "" }
        }
        try file.write(contentsOf: Data(chunk.utf8))
    }

    /// Writes summary.json, summary.md and junit.xml into `directory`.
    public static func write(_ summary: RunSummary, to directory: String) throws {
        var summary = summary
        summary.exitStatus = summary.verdictExitStatus
        try summary.json().write(to: URL(fileURLWithPath: directory + "/summary.json"))
        try Data(summary.markdown.utf8).write(to: URL(fileURLWithPath: directory + "/summary.md"))
        let junit = JUnitReport.xml(suite: "\(summary.scenario) (\(summary.mode), seed \(summary.seed))",
                                    cases: JUnitReport.cases(of: summary, invariantNames: ConsistencyChecker.invariantNames),
                                    seconds: summary.wallSeconds)
        try Data(junit.utf8).write(to: URL(fileURLWithPath: directory + "/junit.xml"))
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

extension String {
    /// The string as one CSV field: quoted when it holds a comma, a quote or a line break.
    var csvField: String {
        guard contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return self }
        return "\"" + replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
