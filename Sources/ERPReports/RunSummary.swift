import ERPCore
import Foundation

/// Everything a run reports, in the shape of `summary.json`.
public struct RunSummary: Codable, Sendable {
    public enum Verdict: String, Codable, Sendable { case pass, fail }

    public struct Orders: Codable, Sendable, Hashable {
        /// Orders the client workload tried to place.
        public var submitted = 0
        /// Orders the order service recorded (accepted for processing).
        public var accepted = 0
        public var confirmed = 0
        public var cancelled = 0
        /// Still pending at the end of the run: a liveness failure.
        public var pending = 0
        /// Requests the client gave up on after every attempt.
        public var clientGaveUp = 0
        /// Requests refused outright (validation), never accepted.
        public var refused = 0
        public var cancelReasons: [String: Int] = [:]
        public init() {}
    }

    /// The vending workload, from the client's side and vm-service's.
    public struct Vends: Codable, Sendable, Hashable {
        public var submitted = 0
        public var dispensed = 0
        public var refused = 0
        /// Still pending at vm-service after heal: a liveness failure.
        public var pending = 0
        public var clientGaveUp = 0
        public init() {}
    }

    /// The rest of the client side: campaigns created, reads made, orders by pricing.
    public struct Store: Codable, Sendable, Hashable {
        public var campaignsCreated = 0
        public var campaignsFailed = 0
        public var reads = 0
        public var readsFailed = 0
        /// Orders by how the order service priced them: list, campaign, fallback.
        public var pricing: [String: Int] = [:]
        public init() {}
    }

    public struct Violation: Codable, Sendable, Hashable {
        public var invariant: String
        /// A counter-example: the entity and the numbers that break the invariant.
        public var example: String
        public init(invariant: String, example: String) { self.invariant = invariant; self.example = example }
    }

    public struct Network: Codable, Sendable, Hashable {
        public var sent = 0, delivered = 0, dropped = 0, duplicated = 0
        /// Routes the kernel was told to refuse for partitions and isolations (`erp run --mode zmq
        /// --network kernel`); nil when the filters made them. What such a route stops is not in
        /// `dropped`, which counts the filters' drops.
        public var kernelCuts: Int?
        public init() {}
    }

    /// What the call policy of one path (`order->inventory`) did.
    public struct PathResilience: Codable, Sendable, Hashable {
        public var calls: Int
        public var attempts: Int
        public var retries: Int
        public var failedCalls: Int
        public var breakerRejections: Int
        public var breakerOpened: Int
        public var breakerHalfOpened: Int
        public var breakerClosed: Int
        /// The breaker's state after its last transition.
        public var breakerState: String
        public init(calls: Int, attempts: Int, retries: Int, failedCalls: Int, breakerRejections: Int, breakerOpened: Int,
                    breakerHalfOpened: Int, breakerClosed: Int, breakerState: String) {
            self.calls = calls; self.attempts = attempts; self.retries = retries; self.failedCalls = failedCalls
            self.breakerRejections = breakerRejections; self.breakerOpened = breakerOpened; self.breakerHalfOpened = breakerHalfOpened
            self.breakerClosed = breakerClosed; self.breakerState = breakerState
        }
    }

    /// The schema's version (docs/report-format.md): it changes when a field changes meaning or goes.
    public var version = 1
    public var scenario: String
    /// The scenario file the run was loaded from (empty for a scenario built in code).
    public var scenarioPath = ""
    /// The folder the run was started in, which a relative `scenarioPath` (and `reproduce`) is
    /// relative to: replay and shrink read the scenario from there wherever they are run (a report
    /// handed on named a folder it did not record: a report reader's trial).
    public var startedIn: String?
    /// The SQLite library the run's services ran on (the system's): a simulated trace depends on
    /// it where a power cut counts SQLite's writes or a disk fault quotes its error text, so
    /// `erp replay` on a machine with another one says so beside a divergence. Nil in summaries
    /// of older builds.
    public var sqliteVersion: String?
    /// What the scenario and fixtures files held when the run read them (SHA-256), whose copies
    /// the report keeps in `inputs/`: `erp replay` and `erp shrink` run those copies, and say so
    /// when the files have changed since. Nil in summaries of older builds and of runs that keep
    /// no copies (a bench's, a shrink's candidates').
    public var inputs: RecordedInputs?
    /// The erp binary that ran it (its size and modification time: a cheap identity, not a
    /// proof), so that a replay by another build says that a divergence may be the build's. Nil
    /// in summaries of older builds.
    public var build: RecordedBuild?
    public var seed: UInt64
    public var mode: String
    public var traceHash: String?
    public var reproduce: String
    public var chaosMilliseconds: Int64
    public var healMilliseconds: Int64
    /// The shortest heal phase that gives every breaker time to close again (twice the longest
    /// reset, plus 10 s; or six device heartbeats): what swarm, shrink and `--duration` keep to.
    public var healFloorMilliseconds: Int64?
    public var orders = Orders()
    /// The open-loop workload's rates over the chaos phase, orders per second: what the scenario
    /// asked for, what the client sent (Poisson arrivals, whatever the system's state), and what
    /// came back with an outcome before the phase ended. Latencies are timed from each order's
    /// intended send time, so a stalled system shows as slow orders, not as fewer of them.
    public var openLoop = OpenLoop()
    public struct OpenLoop: Codable, Sendable, Hashable {
        public var targetPerSecond = 0.0
        public var offeredPerSecond = 0.0
        public var completedPerSecond = 0.0
        public init() {}
    }
    public var vends = Vends()
    public var store = Store()
    public var invariants: [String: Verdict] = [:]
    public var violations: [Violation] = []
    /// The counter-examples kept for invariant `name`, in the order found.
    public func counterExamples(of name: String) -> [String] { violations.filter { $0.invariant == name }.map(\.example) }
    /// How many counter-examples of one invariant `violations` keeps.
    public static let examplesPerInvariantMax = 20
    /// How many counter-examples each failing invariant had in all (`violations` keeps up to
    /// `examplesPerInvariantMax` of each); empty when none failed. Optional: summaries written
    /// before it lack it.
    public var violationCounts: [String: Int]?
    public var latency: [String: LatencySummary] = [:]
    public var faults: [String] = []
    public var serviceStarts: [String: Int] = [:]
    /// Unfinished sagas that restarted order services found in their database and drove on.
    public var recoveredSagas = 0
    public var network = Network()
    public var resilience: [String: PathResilience] = [:]
    /// Requests the gateway shed with overloaded (429).
    public var rateLimited = 0
    public var deadLetters = 0
    /// Events the bus logged, by type and the version they were written at ("OrderCreated 2.0").
    public var eventVersions: [String: Int] = [:]
    public var defects: [String] = []
    /// The multiplier the run's fixtures' stock was taken at (`stockTimes`, `--stock`); nil for
    /// the file's own stock.
    public var stockTimes: Int?
    /// Simulation: how many times each planted defect acted (its code took the wrong path: a
    /// stock release skipped, a declined payment confirmed…), 0 for one that never had occasion.
    /// Nil in zmq mode (the services log each such line) and for runs that planted none.
    public var defectsActed: [String: Int]?
    /// Services whose `synchronous` the scenario weakened (`durability:`, simulation only), as
    /// "order: normal": a planted defect too, which the reports name (a reader saw "told
    /// confirmed for unknown order" with no hint that the run had weakened syncing on purpose).
    /// Nil when none.
    public var weakenedDurability: [String]?
    /// Why the counts read from the databases (orders accepted, confirmed, cancelled, pending;
    /// vends dispensed, refused, pending) are zeros that measure nothing: a database is damaged.
    /// Nil when they were read. The client's own counts (submitted, gave up, refused) stand.
    public var countsNotJudged: String?
    public var expectationFailures: [String] = []
    public var traceLines = 0
    public var wallSeconds: Double = 0
    /// The run's verdict as `erp run`'s exit status (`verdictExitStatus`), written with the
    /// reports so that a pipeline reading only the files has it: 0, 2, 3 or 4. Optional:
    /// summaries written before 2026-12-06 (evening) lack it.
    public var exitStatus: Int32?

    /// Whose milliseconds the latencies are: the simulator's virtual time or the wall clock.
    var timeBase: String { mode == "simulation" ? "virtual" : "wall-clock" }

    public init(scenario: String, seed: UInt64, mode: String, reproduce: String, chaos: Duration, heal: Duration) {
        self.scenario = scenario
        self.seed = seed
        self.mode = mode
        self.reproduce = reproduce
        self.chaosMilliseconds = chaos.nanoseconds / 1_000_000
        self.healMilliseconds = heal.nanoseconds / 1_000_000
    }

    /// What `erp run` exits with for this run: 2 a broken invariant (graver than liveness, which
    /// it outranks), 3 liveness alone, 4 only expectations, 0 everything held.
    public var verdictExitStatus: Int32 {
        if consistencyFailed { return 2 }
        if !livenessPass { return 3 }
        if !invariantsPass { return 2 }
        return expectationFailures.isEmpty ? 0 : 4
    }

    public var invariantsPass: Bool { invariants.values.allSatisfy { $0 == .pass } }
    /// The invariants that failed, sorted.
    public var failedInvariants: [String] { invariants.filter { $0.value == .fail }.map(\.key).sorted() }
    /// The liveness check among the invariants: every accepted order finished after the heal.
    public static let livenessInvariant = "every-accepted-order-terminal-after-heal"
    public var livenessPass: Bool { invariants[Self.livenessInvariant] != .fail }
    /// An invariant other than liveness failed: the graver finding, which decides `erp run`'s
    /// exit status when liveness failed too.
    public var consistencyFailed: Bool { failedInvariants.contains { $0 != Self.livenessInvariant } }

    public func json() throws -> Data {
        let encoder = JSONCoding.encoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        return try encoder.encode(self)
    }

    /// Whether a database could not be read whole (`databases-intact` failed): nothing that
    /// reads the databases was counted or judged then.
    public var databasesDamaged: Bool { invariants["databases-intact"] == .fail }

    /// What the reports say instead of the counts and verdicts a damaged database kept from them.
    public static let notJudgedForDamage = "not judged: a database is damaged (databases-intact), and the counts and invariants read the databases"

    /// The counter-examples the console shows: the first of every failing invariant, then more in
    /// report order up to ten in all. Ten of the first invariant alone hid the one nearest the
    /// cause (`skip-inbox` failed six invariants and showed only `stock-conservation`: a report
    /// reader's trial).
    static func consoleExamples(_ violations: [Violation], atMost limit: Int = 10) -> [Violation] {
        var picked = Set<Int>()
        var seen = Set<String>()
        for (index, v) in violations.enumerated() where seen.insert(v.invariant).inserted { picked.insert(index) }
        for index in violations.indices where picked.count < limit { picked.insert(index) }
        return violations.indices.filter { picked.contains($0) }.map { violations[$0] }
    }

    /// The few lines printed at the end of a run.
    public var humanSummary: String {
        var lines: [String] = []
        lines.append("scenario \(scenario) (\(mode)), seed \(seed)" + (stockTimes.map { ", the fixtures' stock × \($0)" } ?? ""))
        if databasesDamaged {
            lines.append("orders: \(orders.submitted) submitted, \(orders.clientGaveUp) given up by the client; accepted, confirmed, cancelled and pending \(Self.notJudgedForDamage)")
        } else {
            lines.append("orders: \(orders.submitted) submitted, \(orders.accepted) accepted, \(orders.confirmed) confirmed, \(orders.cancelled) cancelled, \(orders.pending) pending, \(orders.clientGaveUp) given up by the client")
        }
        if !orders.cancelReasons.isEmpty {
            lines.append("cancelled because: " + orders.cancelReasons.keys.sorted().map { "\($0) \(orders.cancelReasons[$0]!)" }.joined(separator: ", "))
        }
        if let l = latency["orderPlacement"], l.count == 0 {
            lines.append("order placement latency: no order was answered")
        } else if let l = latency["orderPlacement"] {
            lines.append("order placement latency (\(timeBase) ms): p50 \(l.p50)  p90 \(l.p90)  p99 \(l.p99)  max \(l.max)  (n=\(l.count))")
        }
        lines.append("open loop: target \(openLoop.targetPerSecond)/s, offered \(openLoop.offeredPerSecond)/s, completed in the chaos phase \(openLoop.completedPerSecond)/s")
        if vends.submitted > 0 || vends.pending > 0 {
            lines.append("vends: \(vends.submitted) submitted, \(vends.dispensed) dispensed, \(vends.refused) refused, \(vends.pending) pending, \(vends.clientGaveUp) given up by the client")
        }
        if !store.pricing.isEmpty {
            lines.append("orders priced at: " + store.pricing.keys.sorted().map { "\($0) \(store.pricing[$0]!)" }.joined(separator: ", "))
        }
        if store.campaignsCreated + store.campaignsFailed + store.reads + store.readsFailed > 0 {
            lines.append("campaigns created: \(store.campaignsCreated) (\(store.campaignsFailed) failed); reads: \(store.reads) (\(store.readsFailed) failed)")
        }
        switch invariants["stock-conservation"] {
        case .pass?: lines.append("stock conserved: yes")
        case .fail?: lines.append("stock conserved: NO")
        case nil: lines.append("stock conserved: " + (databasesDamaged ? Self.notJudgedForDamage : "not judged"))
        }
        for name in invariants.keys.sorted() { lines.append("  \(invariants[name]! == .pass ? "pass" : "FAIL")  \(name)") }
        let shown = Self.consoleExamples(violations)
        for v in shown { lines.append("  counter-example [\(v.invariant)]: \(v.example)") }
        if violations.count > shown.count { lines.append("  … \(violations.count - shown.count) more in summary.json") }
        let kept = Self.examplesPerInvariantMax
        for (name, count) in (violationCounts ?? [:]).sorted(by: { $0.key < $1.key }) where count > kept {
            lines.append("  \(name): \(count) counter-examples in all (summary.json keeps \(kept))")
        }
        // An order left pending behind a breaker that is still open: the heal phase was shorter
        // than the breaker's reset, which is the schedule's doing rather than the services'.
        if !livenessPass {
            // The schedule's doing, again: a hand-written heal shorter than the floor the
            // generated schedules keep to, and the services were blamed for the wait.
            if mode == "simulation", let floor = healFloorMilliseconds, healMilliseconds < floor {
                lines.append("  note: the heal phase (\(Duration.milliseconds(healMilliseconds).readable)) is shorter than this scenario's floor "
                             + "(\(Duration.milliseconds(floor).readable): twice the longest breaker reset, plus 10 s): orders may still be pending "
                             + "for want of time, not for what the services did; try heal: \(Duration.milliseconds(floor).readable)")
            }
            let open = resilience.keys.sorted().filter { resilience[$0]!.breakerState != "closed" }
            if !open.isEmpty {
                lines.append("  note: breaker(s) not closed at the end: \(open.map { "\($0) (\(resilience[$0]!.breakerState))" }.joined(separator: ", ")); "
                             + "orders behind an open breaker wait for its reset timeout (heal phases should outlast it)")
            }
        }
        for e in expectationFailures { lines.append("  expectation not met: \(e)") }
        let restarted = serviceStarts.keys.sorted().filter { serviceStarts[$0]! > 1 }
        if !restarted.isEmpty {
            lines.append("restarts: " + restarted.map { "\($0) \(serviceStarts[$0]! - 1)×" }.joined(separator: ", ")
                         + "; saga recoveries by restarted order services: \(recoveredSagas) (a saga counts at each restart that found it unfinished)")
        }
        for path in resilience.keys.sorted() {
            let r = resilience[path]!
            guard r.retries > 0 || r.breakerOpened > 0 || r.failedCalls > 0 else { continue }
            lines.append("  \(path): \(r.calls) calls, \(r.attempts) attempts, \(r.retries) retries, \(r.failedCalls) failed; breaker opened \(r.breakerOpened)×, half-open \(r.breakerHalfOpened)×, closed \(r.breakerClosed)×, rejected \(r.breakerRejections), now \(r.breakerState)")
        }
        if rateLimited > 0 { lines.append("  gateway shed \(rateLimited) requests (429)") }
        if !defects.isEmpty {
            lines.append("planted defects: " + defectsWithActs)
            for name in defects {
                guard let acted = defectsActed?[name] else { continue }
                if acted == 0 {
                    lines.append("  note: \(name) never acted: nothing in this run gave it occasion, so the verdict says nothing about whether the checker catches it")
                } else if invariantsPass {
                    lines.append("  note: \(name) acted \(acted)× and every invariant held: its effect was undone before the end, or the checker misses it")
                }
            }
        }
        if let weakenedDurability { lines.append("planted: durability weakened (simulation only) for \(weakenedDurability.joined(separator: ", "))") }
        if mode == "zmq" {
            // Counted by each process's transport: the runner's own calls (fault controls, the
            // control reports) are received but not sent by a service.
            lines.append("network: \(network.sent) calls made by the services, \(network.delivered) requests received (the runner's included), \(network.dropped) dropped, \(network.duplicated) duplicated; dead letters \(deadLetters)")
            if let cuts = network.kernelCuts {
                lines.append("network: a host per service; partitions and isolations made by the kernel: \(cuts) routes cut (what they stopped is not counted as dropped; runner.log has each)")
            }
        } else {
            lines.append("network: \(network.sent) sent, \(network.delivered) delivered, \(network.dropped) dropped, \(network.duplicated) duplicated; dead letters \(deadLetters)")
        }
        // Shown when a type was on the bus at more than one version (a rolling upgrade).
        let types = eventVersions.keys.map { $0.prefix { $0 != " " } }
        if Set(types).count < types.count {
            lines.append("events by version: " + eventVersions.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        }
        if let traceHash { lines.append("trace hash: \(traceHash) (\(traceLines) lines)") }
        lines.append("reproduce: \(reproduce)")
        return lines.joined(separator: "\n")
    }

    /// The planted defects, each with how often it acted when that was counted.
    var defectsWithActs: String {
        defects.map { name in defectsActed?[name].map { "\(name) (acted \($0)×)" } ?? name }.joined(separator: ", ")
    }

    /// What the run planted on purpose (`--defect`, a weakened `durability:`), in one line; nil
    /// when nothing.
    public var plantedText: String? {
        let parts = (defects.isEmpty ? [] : ["defects " + defectsWithActs])
            + (weakenedDurability.map { ["durability weakened for " + $0.joined(separator: ", ")] } ?? [])
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// summary.md: the same facts for a pull request or a wiki.
    public var markdown: String {
        var md = "# Run of `\(scenario)` (\(mode), seed \(seed))\n\n"
        let passed = invariantsPass && expectationFailures.isEmpty
        md += "**\(passed ? "PASS" : "FAIL")**" + (failedInvariants.isEmpty ? "" : ": broken \(failedInvariants.joined(separator: ", "))") + "\n\n"
        md += "Reproduce: `\(reproduce)`\n\n"
        if let stockTimes { md += "Stock: every shop's stock in the fixtures × \(stockTimes)\n\n" }
        if let planted = plantedText { md += "Planted: \(planted)\n\n" }
        if let traceHash { md += "Trace hash: `\(traceHash)`\n\n" }
        if !expectationFailures.isEmpty {
            md += "Expectations not met:\n\n" + expectationFailures.map { "- \($0)" }.joined(separator: "\n") + "\n\n"
        }
        if databasesDamaged {
            md += "## Orders\n\n\(orders.submitted) submitted, \(orders.clientGaveUp) given up by the client; the rest \(Self.notJudgedForDamage).\n\n"
        } else {
            md += "## Orders\n\n| submitted | accepted | confirmed | cancelled | pending | client gave up |\n|---|---|---|---|---|---|\n"
            md += "| \(orders.submitted) | \(orders.accepted) | \(orders.confirmed) | \(orders.cancelled) | \(orders.pending) | \(orders.clientGaveUp) |\n\n"
        }
        if !store.pricing.isEmpty {
            md += "Priced at: " + store.pricing.keys.sorted().map { "\($0) \(store.pricing[$0]!)" }.joined(separator: ", ") + "\n\n"
        }
        if vends.submitted > 0 || vends.pending > 0 {
            md += "## Vends\n\n| submitted | dispensed | refused | pending | client gave up |\n|---|---|---|---|---|\n"
            md += "| \(vends.submitted) | \(vends.dispensed) | \(vends.refused) | \(vends.pending) | \(vends.clientGaveUp) |\n\n"
        }
        if store.campaignsCreated + store.campaignsFailed + store.reads + store.readsFailed > 0 {
            md += "Campaigns created: \(store.campaignsCreated) (\(store.campaignsFailed) failed); reads: \(store.reads) (\(store.readsFailed) failed)\n\n"
        }
        md += "## Invariants\n\n| invariant | verdict |\n|---|---|\n"
        for name in invariants.keys.sorted() { md += "| \(name) | \(invariants[name]!.rawValue) |\n" }
        if !violations.isEmpty {
            md += "\n### Counter-examples\n\n"
            for v in violations { md += "- **\(v.invariant)**: \(v.example)\n" }
            for (name, all) in (violationCounts ?? [:]).sorted(by: { $0.key < $1.key }) {
                let kept = violations.filter { $0.invariant == name }.count
                if all > kept { md += "\n\(name): \(kept) of \(all) counter-examples shown.\n" }
            }
        }
        md += "\n## Latency (\(timeBase) milliseconds)\n\nA flow is timed from the client's side; `rpc METHOD` is every call of that method, from the caller's side, failures (timeouts) included.\n\n| flow or call | n | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n"
        for name in latency.keys.sorted() {
            let l = latency[name]!
            md += "| \(name) | \(l.count) | \(l.p50) | \(l.p90) | \(l.p99) | \(l.p999) | \(l.max) |\n"
        }
        if !resilience.isEmpty {
            md += "\n## Call policies\n\n| path | calls | attempts | retries | failed | breaker opened | half-open | closed | rejected | state |\n|---|---|---|---|---|---|---|---|---|---|\n"
            for path in resilience.keys.sorted() {
                let r = resilience[path]!
                md += "| \(path) | \(r.calls) | \(r.attempts) | \(r.retries) | \(r.failedCalls) | \(r.breakerOpened) | \(r.breakerHalfOpened) | \(r.breakerClosed) | \(r.breakerRejections) | \(r.breakerState) |\n"
            }
        }
        if !faults.isEmpty {
            md += "\n## Faults\n\n" + faults.map { "- \($0)" }.joined(separator: "\n") + "\n"
        }
        return md
    }
}

/// The digests of the files a run read (`RunSummary.inputs`).
public struct RecordedInputs: Codable, Sendable, Equatable {
    public var scenarioSHA256: String
    public var fixturesSHA256: String

    public init(scenarioSHA256: String, fixturesSHA256: String) {
        self.scenarioSHA256 = scenarioSHA256
        self.fixturesSHA256 = fixturesSHA256
    }
}

/// Which binary wrote a report (`RunSummary.build`): the running executable's size and the time
/// it was last modified (built), to the second.
public struct RecordedBuild: Codable, Sendable, Equatable, CustomStringConvertible {
    public var bytes: Int
    public var modified: String

    public init(bytes: Int, modified: String) {
        self.bytes = bytes
        self.modified = modified
    }

    /// The running executable's; nil when it cannot be read.
    public static func current() -> RecordedBuild? {
        guard let path = Bundle.main.executablePath,
              let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let bytes = attributes[.size] as? Int, let date = attributes[.modificationDate] as? Date else { return nil }
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime]
        return RecordedBuild(bytes: bytes, modified: format.string(from: date))
    }

    public var description: String { "\(bytes) bytes, built \(modified)" }
}
