import ERPCore
import ERPReports
import ERPScenario
import ERPServices
import ERPSimulation
import ERPTransport
import ERPZeroMQ
import Foundation
import Logging

/// `erp run <scenario> --mode zmq`: the scenario on real processes and real sockets.
///
/// It writes a topology of its own (an `ipc://` endpoint per service in a scratch folder, a free
/// loopback port for HTTP, fresh CURVE keys for the services and for itself), starts every service
/// as an `erp serve … --fault-control` child under a `Supervisor`, sends the workload as HTTP
/// requests to the gateway, and plays the fault schedule on the wall clock:
/// crash → SIGKILL, kept down until its restart time; pause → SIGSTOP/SIGCONT; partitions,
/// isolation, link faults, clock skew and provider faults → the `ApplyFaults` control method,
/// which sets each process's transport fault filter. At the end of the chaos phase everything is
/// healed; after the heal phase the services are stopped with SIGTERM and the same checkers as in
/// simulation judge their databases. The summary has the simulation's shape, with mode "zmq" and
/// no trace hash (real time is not reproducible).
public struct ZeroMQScenarioRunner: Sendable {
    public var scenario: Scenario
    /// The scenario file, which each child reads for its settings (defects, provider, resilience).
    public var scenarioPath: String
    public var fixturesPath: String
    public var fixtures: Fixtures
    /// Seeds the workload (which customers order what); the services' own randomness is the OS's.
    public var seed: UInt64
    public var outputDirectory: String
    /// The erp binary the children run.
    public var executable: String
    public var reproduce = ""
    /// The heal phase never lasts less than this: real processes need real time to finish flows
    /// (saga retries, event redelivery backoff) however short the scenario was scaled.
    public var healMinimum: Duration = .seconds(8)
    /// How long the services get to come up and answer.
    public var startTimeout: Duration = .seconds(60)
    public var log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public init(scenario: Scenario, scenarioPath: String, fixturesPath: String, fixtures: Fixtures, seed: UInt64,
                outputDirectory: String, executable: String) {
        self.scenario = scenario
        self.scenarioPath = scenarioPath
        self.fixturesPath = fixturesPath
        self.fixtures = fixtures
        self.seed = seed
        self.outputDirectory = outputDirectory
        self.executable = executable
    }

    static let runnerNode = NodeName("runner")

    public func run() async throws -> RunSummary {
        let wallStart = ContinuousClock.now
        let fm = FileManager.default
        let out = URL(fileURLWithPath: outputDirectory).standardizedFileURL.path
        let databaseDirectory = out + "/db", logDirectory = out + "/logs"
        try fm.createDirectory(atPath: databaseDirectory, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let scratch = try Self.makeScratchDirectory()
        defer { try? fm.removeItem(atPath: scratch) }

        // A topology of our own: ipc endpoints, a free HTTP port, fresh keys (the runner's too).
        let services = ServiceCatalog.startOrder
        let keys = KeyStore(directory: scratch + "/keys")
        try keys.generate(named: services.map(\.rawValue) + [Self.runnerNode.rawValue])
        let httpPort = try Self.freeLoopbackPort()
        let apiKey = "run-\(seed)-\(UInt64.random(in: 0...UInt64.max))"
        var yaml = """
            name: \(scenario.name)-zmq
            dataDirectory: \(databaseDirectory)
            http: {host: 127.0.0.1, port: \(httpPort), apiKeys: [\(apiKey)]}
            security: {curveKeys: \(scratch)/keys, clients: [\(Self.runnerNode)]}
            services:

            """
        var metricsPorts: [ServiceName: Int] = [:]
        for service in services {
            if service == .gateway {
                yaml += "  \(service): ipc://\(scratch)/\(service).sock\n"
            } else {
                let port = try Self.freeLoopbackPort()
                metricsPorts[service] = port
                yaml += "  \(service): {endpoint: ipc://\(scratch)/\(service).sock, metrics: 127.0.0.1:\(port)}\n"
            }
        }
        let topologyPath = scratch + "/topology.yaml"
        try yaml.write(toFile: topologyPath, atomically: true, encoding: .utf8)
        try yaml.write(toFile: out + "/topology.yaml", atomically: true, encoding: .utf8)
        let topology: Topology
        do { topology = try Topology.load(path: topologyPath) } catch { throw RunnerError("the generated topology is invalid: \(error)") }

        let healPhase = max(scenario.heal, healMinimum)
        let journal = Journal(start: wallStart, path: out + "/runner.log", echo: log)
        let supervisor = Supervisor(children: services.map { service in
            Supervisor.Child(name: service.rawValue, executable: executable,
                             arguments: ["serve", service.rawValue, "--topology", topologyPath, "--fixtures", fixturesPath,
                                         "--scenario", scenarioPath, "--fault-control", "--exit-with-parent"],
                             logPath: logDirectory + "/\(service).log")
        })
        supervisor.log = { journal.note($0) }
        // Scripted crashes are the only restarts that should happen; a child that dies on its own
        // is still restarted, as in production, and shows in serviceStarts.
        supervisor.restartCountMax = 20

        // The runner's own node: the workload's runtime and the control calls.
        let context = try ZMQContext()
        let book = AddressBook()
        for (service, endpoint) in topology.endpoints {
            book.set(NodeName(service), .init(endpoint: endpoint, curvePublicKey: try keys.publicKey(of: service)))
            book.set(service, servedBy: NodeName(service))
        }
        let authenticator = try await ZAPAuthenticator.start(context: context, allowedClientPublicKeys: []) { _ in }
        let executor = SerialTaskExecutor(name: "runner")
        let clock = SystemClock()
        var transportLogger = Logger(label: "runner.transport")
        transportLogger.logLevel = .error
        let transport = ZeroMQTransport(node: Self.runnerNode, endpoint: "ipc://\(scratch)/runner.sock", addressBook: book,
                                        context: context, security: .curve(try keys.keyPair(named: Self.runnerNode.rawValue)),
                                        executor: executor, clock: clock, logger: transportLogger)
        let http = LoopbackHTTPClient(host: "127.0.0.1", port: httpPort)
        // Ctrl-C or SIGTERM: stop the services, drop the unfinished report, exit 130.
        let interrupts = TerminationSignals {
            journal.note("interrupted: stopping every service")
            supervisor.stop()
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: scratch)
            exit(130)
        }
        defer { interrupts.cancel() }
        var started = false
        func tearDown() async {
            if started { supervisor.stop() }
            await http.shutdown()
            await transport.stop()
            executor.shutdown()
            await authenticator.stop()
            context.terminate()
        }

        let skews = scenario.faults.compactMap { fault -> Duration? in
            if case .clockSkew(_, let by) = fault.kind { return by < .zero ? .zero - by : by }
            return nil
        }
        let control = Control(transport: transport, clock: clock, journal: journal, skewAllowance: skews.max() ?? .zero)
        let faults = FaultPlan(scenario: scenario)
        let client: OrderWorkloadClient
        let reports = ReportBook()
        do {
            try await transport.start()
            try supervisor.start()
            started = true
            journal.note("services starting; gateway http://127.0.0.1:\(httpPort)")
            try await waitUntilReady(services, control: control, http: http)
            journal.note("every service answers")
            await control.push(faults, to: services)

            // The chaos phase: orders arrive and faults strike, on the wall clock.
            let runtime = ZeroMQRuntime(node: Self.runnerNode, transport: transport, executor: executor, dataDirectory: scratch,
                                        clock: clock, random: SeededRandomSource(seed: seed))
            let chaosStart = ContinuousClock.now
            client = OrderWorkloadClient(runtime: runtime, api: HTTPOrderAPI(client: http, apiKey: apiKey),
                                         workload: scenario.workload, fixtures: fixtures, until: clock.now + scenario.duration)
            await executor.run { client.start() }
            let poller = Task { await reports.poll(services, control: control, faults: faults, every: .seconds(1)) }
            await playFaults(from: chaosStart, faults: faults, supervisor: supervisor, control: control, services: services)
            await heal(faults: faults, supervisor: supervisor, control: control, services: services)

            // The heal phase: no new orders; flows finish. It lasts its time, and longer (up to as
            // long again) while the client still waits for an order's outcome.
            let healStart = ContinuousClock.now
            try? await Task.sleep(until: healStart + healPhase)
            while !(await executor.run { client.isDone }) && ContinuousClock.now < healStart + healPhase * 2 {
                try? await Task.sleep(for: .milliseconds(200))
            }
            journal.note(String(format: "heal phase over after %.1fs", (ContinuousClock.now - healStart).seconds))
            poller.cancel()
            // The last word of every process: on a loaded machine the periodic polls may all have
            // missed one, so this one waits longer and asks again.
            let silent = await reports.collect(services, control: control, faults: faults, timeout: .seconds(3), attempts: 3)
            if !silent.isEmpty { journal.note("no final report from \(silent.map(\.rawValue).joined(separator: ", ")): their figures are missing from the summary") }
            await saveMetrics(services, http: http, metricsPorts: metricsPorts, into: out + "/metrics", journal: journal)
        } catch {
            journal.note("run failed: \(error)")
            await tearDown()
            throw error
        }
        let history = await executor.run { client.records }
        let starts = supervisor.startCount
        await tearDown()
        journal.note("services stopped")

        var summary = RunSummary(scenario: scenario.name, seed: seed, mode: "zmq", reproduce: reproduce,
                                 chaos: scenario.duration, heal: healPhase)
        summary.faults = scenario.faults.map(\.summaryText)
        summary.defects = scenario.defects.enabledNames
        for service in services { summary.serviceStarts[service.rawValue] = starts[service.rawValue] ?? 0 }
        summary.recoveredSagas = Self.recoveredSagas(inLog: logDirectory + "/order.log")
        reports.fill(&summary)
        try SimulationRunner.judge(into: &summary, scenario: scenario, history: history, databaseDirectory: databaseDirectory)
        summary.wallSeconds = ((ContinuousClock.now - wallStart).seconds * 1000).rounded() / 1000
        try SimulationRunner.write(summary, to: out)
        return summary
    }

    // MARK: Phases

    private func waitUntilReady(_ services: [ServiceName], control: Control, http: LoopbackHTTPClient) async throws {
        let end = ContinuousClock.now + startTimeout
        for service in services {
            while (try? await control.report(service)) == nil {
                guard ContinuousClock.now < end else {
                    throw RunnerError("\(service) did not answer within \(startTimeout.shortDescription); see \(outputDirectory)/logs/\(service).log")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        while true {
            if (try? await http.send(.GET, "/health", timeout: .seconds(1)))?.status == 200 { return }
            guard ContinuousClock.now < end else { throw RunnerError("the gateway's HTTP never answered /health") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private enum Step {
        case begin(Int), end(Int), restart(NodeName)
    }

    /// Plays the fault schedule in order of time (ties in file order) until the chaos phase ends.
    private func playFaults(from chaosStart: ContinuousClock.Instant, faults: FaultPlan, supervisor: Supervisor,
                            control: Control, services: [ServiceName]) async {
        var steps: [(at: Duration, order: Int, step: Step)] = []
        for (i, fault) in scenario.faults.enumerated() where fault.at < scenario.duration {
            steps.append((fault.at, steps.count, .begin(i)))
            if let length = fault.duration, fault.at + length < scenario.duration { steps.append((fault.at + length, steps.count, .end(i))) }
            if case .crash(let node, let after?) = fault.kind, fault.at + after < scenario.duration {
                steps.append((fault.at + after, steps.count, .restart(node)))
            }
        }
        steps.sort { ($0.at, $0.order) < ($1.at, $1.order) }
        var restarts: [Task<Void, Never>] = []
        for (at, _, step) in steps {
            try? await Task.sleep(until: chaosStart + at)
            switch step {
            case .begin(let i):
                let fault = scenario.faults[i]
                control.journal.note("fault \(fault.summaryText)")
                switch fault.kind {
                case .crash(let node, _):
                    faults.crashed.insert(node)
                    if !supervisor.crash(node.rawValue) { control.journal.note("\(node) was not running") }
                case .pause(let node):
                    faults.paused.insert(node)
                    supervisor.send(SIGSTOP, to: node.rawValue)
                default:
                    faults.active[i] = fault.kind
                    await control.push(faults, to: services)
                }
            case .end(let i):
                let fault = scenario.faults[i]
                control.journal.note("fault over: \(fault.summaryText)")
                switch fault.kind {
                case .crash: break
                case .pause(let node):
                    supervisor.send(SIGCONT, to: node.rawValue)
                    faults.paused.remove(node)
                    await control.push(faults, to: [ServiceName(named: node.rawValue)].compactMap { $0 })
                default:
                    faults.active[i] = nil
                    await control.push(faults, to: services)
                }
            case .restart(let node):
                restarts.append(restart(node, faults: faults, supervisor: supervisor, control: control))
            }
        }
        try? await Task.sleep(until: chaosStart + scenario.duration)
        for task in restarts { await task.value }
    }

    /// Starts a crashed service again and, once it answers, gives it its share of the faults.
    private func restart(_ node: NodeName, faults: FaultPlan, supervisor: Supervisor, control: Control) -> Task<Void, Never> {
        control.journal.note("restart \(node)")
        do { try supervisor.restart(node.rawValue) } catch { control.journal.note("cannot restart \(node): \(error)") }
        faults.crashed.remove(node)
        return Task {
            guard let service = ServiceName(named: node.rawValue) else { return }
            let end = ContinuousClock.now + startTimeout
            while (try? await control.report(service)) == nil, ContinuousClock.now < end {
                try? await Task.sleep(for: .milliseconds(50))
            }
            await control.push(faults, to: [service])
        }
    }

    /// The end of the chaos phase: every fault off, crashed services back, paused ones resumed.
    private func heal(faults: FaultPlan, supervisor: Supervisor, control: Control, services: [ServiceName]) async {
        control.journal.note("heal phase begins")
        faults.healed = true
        faults.active = [:]
        for node in faults.paused.sorted() { supervisor.send(SIGCONT, to: node.rawValue) }
        faults.paused = []
        let restarts = faults.crashed.sorted().map { restart($0, faults: faults, supervisor: supervisor, control: control) }
        for task in restarts { await task.value }
        await control.push(faults, to: services)
    }

    /// Scrapes every service's Prometheus metrics (RPC served and called per method; HTTP routes
    /// at the gateway) into `<service>.prom`: the per-call latency percentiles of this run, as the
    /// last incarnation of each process saw them.
    private func saveMetrics(_ services: [ServiceName], http: LoopbackHTTPClient, metricsPorts: [ServiceName: Int], into directory: String,
                             journal: Journal) async {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for service in services {
            guard let port = service == .gateway ? http.port : metricsPorts[service] else { continue }
            do {
                let response = try await http.send(.GET, "/metrics", port: port, timeout: .seconds(2))
                try response.body.write(to: URL(fileURLWithPath: directory + "/\(service).prom"))
            } catch {
                journal.note("could not read the metrics of \(service): \(error)")
            }
        }
    }

    // MARK: Helpers

    static func recoveredSagas(inLog path: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        var total = 0
        for line in text.split(separator: "\n") { total += OrderService.recoveredSagaCount(in: line) ?? 0 }
        return total
    }

    static func makeScratchDirectory() throws -> String {
        // Short, because ipc:// paths must fit in a socket address (about 100 bytes).
        var template = Array("/tmp/erp-zmq-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw RunnerError("cannot make a scratch folder in /tmp: \(String(cString: strerror(errno)))") }
        return String(cString: made)
    }

    /// A loopback TCP port nobody listens on now (the kernel picks it).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RunnerError("socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw RunnerError("cannot find a free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public struct RunnerError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// What the runner did and when, in wall-clock offsets from the start: runner.log in the report.
final class Journal: @unchecked Sendable {
    // @unchecked Sendable: the file handle is written under the lock.
    private let lock = NSLock()
    private let start: ContinuousClock.Instant
    private let handle: FileHandle?
    private let echo: @Sendable (String) -> Void

    init(start: ContinuousClock.Instant, path: String, echo: @escaping @Sendable (String) -> Void) {
        self.start = start
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        handle = FileHandle(forWritingAtPath: path)
        self.echo = echo
    }

    func note(_ line: String) {
        let offset = ContinuousClock.now - start
        let text = String(format: "%8.3fs ", offset.seconds) + line
        lock.withLock { handle?.write(Data((text + "\n").utf8)) }
        echo(text)
    }
}

/// The faults in force, and what each process's filter must be because of them. Only the runner's
/// main task changes it (a compound update such as `active[i] = x` is a read, then a write); the
/// lock lets the restart, push and report tasks read it meanwhile.
final class FaultPlan: @unchecked Sendable {
    private let lock = NSLock()
    private let scenario: Scenario
    private var _active: [Int: ScheduledFault.Kind] = [:]
    private var _crashed: Set<NodeName> = []
    private var _paused: Set<NodeName> = []
    private var _healed = false

    init(scenario: Scenario) { self.scenario = scenario }

    var active: [Int: ScheduledFault.Kind] {
        get { lock.withLock { _active } }
        set { lock.withLock { _active = newValue } }
    }
    var crashed: Set<NodeName> {
        get { lock.withLock { _crashed } }
        set { lock.withLock { _crashed = newValue } }
    }
    var paused: Set<NodeName> {
        get { lock.withLock { _paused } }
        set { lock.withLock { _paused = newValue } }
    }
    /// After the chaos phase the base network loses nothing (latency only), as in simulation.
    var healed: Bool {
        get { lock.withLock { _healed } }
        set { lock.withLock { _healed = newValue } }
    }

    /// A process that can take a control call now (not killed, not stopped).
    func isReachable(_ node: NodeName) -> Bool { lock.withLock { !_crashed.contains(node) && !_paused.contains(node) } }

    static func linkFault(_ settings: LinkSettings) -> LinkFault {
        LinkFault(dropProbability: settings.dropProbability, duplicateProbability: settings.duplicateProbability,
                  delayMin: settings.latencyMin, delayMax: settings.latencyMax, reorderProbability: settings.reorderProbability)
    }

    /// The whole fault state of one node's process.
    func command(for node: NodeName) -> ApplyFaults {
        let (active, healed) = lock.withLock { (_active, _healed) }
        let base = healed ? scenario.network.link.healed : scenario.network.link
        var rules = FaultFilter.Rules(fallback: Self.linkFault(base), exempt: [ZeroMQScenarioRunner.runnerNode.rawValue])
        var isolated = false
        var skew = Duration.zero
        var declineRate = scenario.payment.declineRate, processingTime = scenario.payment.processingTime
        for i in active.keys.sorted() {
            switch active[i]! {
            case .partition(let a, let b):
                if node == a { rules.links[b.rawValue] = .partition }
                if node == b { rules.links[a.rawValue] = .partition }
            case .partitionOneWay(let from, let to):
                if node == from { rules.links[to.rawValue] = .partition }
            case .isolate(let target):
                if node == target { isolated = true } else { rules.links[target.rawValue] = .partition }
            case .link(let from, let to, let settings):
                if node == from && rules.links[to.rawValue]?.blocked != true { rules.links[to.rawValue] = Self.linkFault(settings) }
            case .clockSkew(let target, let by):
                if node == target { skew = by }
            case .providerDelay(let delay): processingTime = delay
            case .providerDeclineRate(let rate): declineRate = rate
            case .crash, .pause: break
            }
        }
        if isolated {
            rules.fallback = .partition
            for key in rules.links.keys { rules.links[key] = .partition }
        }
        let isProvider = node == NodeName(ServiceName.swishpay)
        return ApplyFaults(rules: rules, clockSkew: skew, providerDeclineRate: isProvider ? declineRate : nil,
                           providerProcessingTime: isProvider ? processingTime : nil)
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

/// The last report of every process incarnation (a restarted service is a new process with new
/// counters), summed at the end.
final class ReportBook: @unchecked Sendable {
    private let lock = NSLock()
    private var latest: [String: ControlReport] = [:]
    private var order: [String] = []

    func store(_ report: ControlReport) {
        let key = "\(report.node)/\(report.processId)"
        lock.withLock {
            if latest[key] == nil { order.append(key) }
            latest[key] = report
        }
    }

    /// Asks every reachable service for its report, each at most `attempts` times. Returns the
    /// services that never answered.
    @discardableResult
    func collect(_ services: [ServiceName], control: Control, faults: FaultPlan, timeout: Duration = .milliseconds(700),
                 attempts: Int = 1) async -> [ServiceName] {
        await withTaskGroup(of: (ServiceName, ControlReport?).self) { group in
            for service in services where faults.isReachable(NodeName(service)) {
                group.addTask {
                    for _ in 0..<attempts {
                        if let report = try? await control.report(service, timeout: timeout) { return (service, report) }
                    }
                    return (service, nil)
                }
            }
            var silent: [ServiceName] = []
            for await (service, report) in group {
                if let report { store(report) } else { silent.append(service) }
            }
            return silent.sorted()
        }
    }

    func poll(_ services: [ServiceName], control: Control, faults: FaultPlan, every interval: Duration) async {
        while !Task.isCancelled {
            await collect(services, control: control, faults: faults)
            try? await Task.sleep(for: interval)
        }
    }

    func fill(_ summary: inout RunSummary) {
        let (latest, order) = lock.withLock { (self.latest, self.order) }
        var paths: [String: ResilienceMetrics.PathCounts] = [:]
        var callLatency: [String: LatencyRecorder] = [:]
        for key in order {
            let report = latest[key]!
            for (method, buckets) in report.callLatency { callLatency[method, default: LatencyRecorder()].merge(buckets) }
            summary.network.sent += report.transport.callsStarted
            summary.network.delivered += report.transport.requestsReceived
            summary.network.dropped += report.faults.blocked + report.faults.dropped
            summary.network.duplicated += report.transport.duplicatesSent
            summary.rateLimited += report.rateLimited
            for (path, counts) in report.resilience { paths[path, default: .init()].add(counts) }
        }
        for (path, counts) in paths { summary.resilience[path] = RunSummary.PathResilience(counts) }
        for (method, recorder) in callLatency { summary.latency["rpc " + method] = recorder.summary }
    }
}
