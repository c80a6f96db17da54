// ERPZeroMQBackend: the scenario runner's adapter for real processes. It writes a topology of its
// own, runs every service as an `erp serve` child under a supervisor, sends the workload as HTTP,
// plays the fault timeline on the wall clock through `ZeroMQFaultInjector`, and gathers each
// process's figures. Twin of ERPSimulationBackend's `SimulationBackend`.
import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import ERPServices
import ERPStorage
import ERPTransport
import ERPZeroMQ
import Foundation
import Logging
import Synchronization

/// A scenario on real processes and real sockets (`erp run --mode zmq`).
///
/// The topology is its own: an `ipc://` endpoint per service in a scratch folder, a free loopback
/// port for HTTP, fresh CURVE keys for the services and for the runner; or, with `network = .kernel`,
/// a network namespace and a TCP address per service (`KernelNetwork`), partitions made by routes. Every service runs as
/// `erp serve … --fault-control --exit-with-parent`. Crash → SIGKILL, kept down until its restart;
/// pause → SIGSTOP/SIGCONT; partitions, isolation, link faults, clock skew and provider faults →
/// the `ApplyFaults` control method. At the end the services are stopped with SIGTERM and the
/// runner judges their databases. Real time is not reproducible: there is no trace hash, and the
/// seed decides only the workload's orders.
public final class ZeroMQBackend: ScenarioBackend, @unchecked Sendable {
    // @unchecked Sendable: the runner calls one phase at a time; what the phases share with
    // concurrent tasks (plan, reports, journal) locks itself.
    public let mode = RunMode.zmq
    let scenario: Scenario
    /// The scenario file, which each child reads for its settings (defects, provider, resilience).
    let scenarioPath: String
    let fixturesPath: String
    let outputDirectory: String
    /// The erp binary the children run.
    let executable: String
    /// The heal phase never lasts less than this: real processes need real time to finish flows
    /// (saga retries, event redelivery backoff) however short the scenario was scaled.
    public var healMinimum: Duration = .seconds(8)
    /// How long, after the heal phase, the runner waits at most for the services' last events to
    /// be delivered before it stops them (`settle`).
    public var settleMaximum: Duration = .seconds(15)
    /// How long the services get to come up and answer.
    public var startTimeout: Duration = .seconds(60)
    public var log: @Sendable (String) -> Void = { FileHandle.standardError.put(Data(($0 + "\n").utf8)) }

    static let runnerNode = NodeName("runner")

    private var running: Running?
    private var client: OrderWorkloadClient?
    private var devices: DeviceWorkloadClient?
    private var store: StoreWorkloadClient?
    private var chaosStart: Timestamp?
    /// The latest moment the IoT gateway may declare a device offline for the silence that
    /// follows the devices' last reports (nil without a device workload).
    private var lastDeclaration: ContinuousClock.Instant?
    private var poller: Task<Void, Never>?
    /// The supervisor of the running services, readable from other tasks (a soak's sampler).
    private let supervisorSlot = Mutex<Supervisor?>(nil)
    /// Every process's newest control report (the book locks itself: read from any task).
    private let reports = ReportBook()
    /// The services' databases' `synchronous` setting (the topology's; production's `before-send` unless set).
    public var synchronous: SynchronousMode = .beforeSend
    /// Who makes partitions and isolations: each process's fault filter (every service on this
    /// host, `ipc://`), or the kernel (a network namespace per service, TCP between them; root).
    public var network: NetworkFaults = .filter
    /// What the order client saw, request by request, once the run is over.
    public private(set) var history: [ClientRecord] = []

    /// Each running service's process id, by service (empty until every service has answered
    /// and after they stop). Safe from any task.
    public var processIdentifiers: [String: Int32] {
        guard let supervisor = supervisorSlot.withLock({ $0 }) else { return [:] }
        var out: [String: Int32] = [:]
        for service in ServiceCatalog.startOrder {
            if let pid = supervisor.processIdentifier(of: service.rawValue) { out[service.rawValue] = pid }
        }
        return out
    }

    /// The process each running service's figures come from, by service: its supervised process,
    /// or, when a tool wraps the service (`ERP_WRAP`, such as heaptrack, which runs the service as
    /// its child), the process under it that runs the service. Without this, a wrapped service
    /// would be sampled as the tool: its memory, its descriptors, and no heap (the control reports
    /// name the service's own process). Safe from any task.
    public var serviceProcessIdentifiers: [String: Int32] {
        processIdentifiers.reduce(into: [:]) { out, entry in
            out[entry.key] = ProcessProbe.serviceProcess(entry.key, under: entry.value)
        }
    }

    /// The heap of a service's process (`serviceProcessIdentifiers`), from its newest control report:
    /// the reports are read every second while the workload runs. Nil before its first report.
    /// Safe from any task.
    public func heap(of service: String, processId: Int32) -> HeapUsage? {
        reports.heap(of: service, processId: processId)
    }

    /// What a started run holds.
    private struct Running {
        var services: [ServiceName]
        var scratch: String
        var databaseDirectory: String
        var logDirectory: String
        var httpPort: Int
        var apiKey: String
        var metricsPorts: [ServiceName: Int]
        /// Where each service's metrics are served, when not at the gateway's host (the kernel network).
        var metricsHosts: [ServiceName: String]
        /// The namespaces of `--network kernel`, removed when the run ends.
        var kernel: KernelNetwork?
        var journal: Journal
        var supervisor: Supervisor
        var context: ZMQContext
        var authenticator: ZAPAuthenticator
        var executor: SerialTaskExecutor
        var clock: SystemClock
        var transport: ZeroMQTransport
        var http: LoopbackHTTPClient
        var interrupts: TerminationSignals
        var control: Control
        var injector: ZeroMQFaultInjector
        /// The devices' way in, when the scenario has devices: the device protocol, a key each.
        var deviceLink: DeviceProtocolLink?
        var deviceIO: IOThread?
    }

    /// Every node's RPC latency histograms, once the run is over (what `erp calibrate` fits).
    public private(set) var measuredLatency: [NodeLatency] = []
    /// The order workload's HTTP answers by status.
    public let httpStatuses = HTTPStatusCount()
    /// CPU seconds each service process spent from the workload's start to the heal phase's end
    /// (a process that restarted in between is left out: its counters started again).
    public private(set) var serviceCPUSeconds: [String: Double] = [:]
    /// The services whose CPU could not be measured (restarted during the run: the process that
    /// started is gone), sorted. Their absence from `serviceCPUSeconds` is said, not silent (a
    /// performance checker's trial read a total without order's share after order was killed).
    public private(set) var serviceCPUNotMeasured: [String] = []
    /// Context switches of each service process's threads over the same span (`ProcStat.contextSwitches`),
    /// for the same processes as `serviceCPUSeconds`.
    public private(set) var serviceContextSwitches: [String: Int] = [:]
    private var cpuAtStart: [String: ProcessCPU] = [:]

    /// A scenario asks for what only the simulator can do.
    public struct SimulationOnly: Error, CustomStringConvertible {
        public var what: String
        public var description: String {
            "\(what) is simulation-only (the disks under real processes are the operating system's); run it with --mode simulation"
        }
    }

    /// What of `scenario` only the simulator can do (a disk fault, a weakened durability), or nil.
    public static func simulationOnly(in scenario: Scenario) -> SimulationOnly? {
        if let fault = scenario.firstSimulationOnlyFault { return SimulationOnly(what: fault) }
        if let weakened = scenario.durability.first {
            return SimulationOnly(what: "durability: \(weakened.service): \(weakened.synchronous.rawValue)")
        }
        return nil
    }

    public init(scenario: Scenario, scenarioPath: String, fixturesPath: String, outputDirectory: String, executable: String) {
        self.scenario = scenario
        self.scenarioPath = scenarioPath
        self.fixturesPath = fixturesPath
        self.outputDirectory = URL(fileURLWithPath: outputDirectory).standardizedFileURL.path
        self.executable = executable
    }

    public var injector: any FaultInjector {
        guard let running else { preconditionFailure("services start before faults") }
        return running.injector
    }

    // MARK: Phases

    public func startServices(_ services: [ServiceName]) async throws {
        // Refused before anything starts: real processes run on the operating system's disks.
        if let problem = Self.simulationOnly(in: scenario) { throw problem }
        let wallStart = ContinuousClock.now
        let fm = FileManager.default
        let out = outputDirectory
        let databaseDirectory = out + "/db", logDirectory = out + "/logs"
        try fm.createDirectory(atPath: databaseDirectory, withIntermediateDirectories: true)
        if let problem = ServiceCatalog.databaseFolderProblem(databaseDirectory) { throw RunnerError("the databases' folder \(problem): choose a shorter --out") }
        try fm.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let scratch = try Self.makeScratchDirectory()
        let journal = Journal(start: wallStart, path: out + "/runner.log", echo: log)

        // With the kernel's network every service gets a namespace and an address of its own; what
        // is made is removed again if the run fails before it starts.
        let kernel = network == .kernel ? try KernelNetwork.create(services: services, log: { journal.note($0) }) : nil
        var started = false
        defer { if !started { kernel?.remove() } }
        // A service's TCP address under the kernel's network (its own port space: one port for all).
        func address(_ service: ServiceName) -> String? { kernel?.addresses[service] }

        // A topology of our own: ipc endpoints (TCP under the kernel's network), a free HTTP port,
        // fresh keys (the runner's too).
        let keys = KeyStore(directory: scratch + "/keys")
        try keys.generate(named: services.map(\.rawValue) + [Self.runnerNode.rawValue])
        let httpHost = address(.gateway) ?? "127.0.0.1"
        let httpPort = kernel == nil ? try freeLoopbackPort() : 8080
        let apiKey = "run-\(UInt64.random(in: 0...UInt64.max))"
        var yaml = """
            name: \(scenario.name)-zmq
            dataDirectory: \(databaseDirectory)
            synchronous: \(synchronous.rawValue)
            http: {host: \(httpHost), port: \(httpPort), apiKeys: [\(apiKey)]}
            security: {curveKeys: \(scratch)/keys, clients: [\(Self.runnerNode)], runner: \(Self.runnerNode)}

            """
        // With devices, each fixture device (and each the scenario adds) gets a key pair of its own
        // in the run's device registry, and reaches the IoT gateway's device door with it.
        let deviceEndpoint = "ipc://\(scratch)/devices.sock"
        let deviceKeys = KeyStore(directory: scratch + "/device-keys")
        if scenario.devices.enabled {
            let fixtures: Fixtures
            do { fixtures = scenario.fixturesForRun(try JSONCoding.decode(Fixtures.self, from: Data(contentsOf: URL(fileURLWithPath: fixturesPath)))) } catch {
                throw RunnerError("\(fixturesPath): cannot read the fixtures: \(error)")
            }
            try deviceKeys.generate(named: fixtures.devices.map(\.id))
            yaml += "devices: {endpoint: \(deviceEndpoint), keys: \(scratch)/device-keys}\n"
        }
        yaml += "services:\n"
        var metricsPorts: [ServiceName: Int] = [:]
        var metricsHosts: [ServiceName: String] = [:]
        for service in services {
            let endpoint = address(service).map { "tcp://\($0):7000" } ?? "ipc://\(scratch)/\(service).sock"
            if service == .gateway {
                yaml += "  \(service): \(endpoint)\n"
            } else {
                let port = kernel == nil ? try freeLoopbackPort() : 9100
                let host = address(service) ?? "127.0.0.1"
                metricsPorts[service] = port
                if host != httpHost { metricsHosts[service] = host }
                yaml += "  \(service): {endpoint: \(endpoint), metrics: \(host):\(port)}\n"
            }
        }
        let topologyPath = scratch + "/topology.yaml"
        try yaml.write(toFile: topologyPath, atomically: true, encoding: .utf8)
        try yaml.write(toFile: out + "/topology.yaml", atomically: true, encoding: .utf8)
        let topology: Topology
        do { topology = try Topology.load(path: topologyPath) } catch { throw RunnerError("the generated topology is invalid: \(error)") }

        let supervisor = Supervisor(children: services.map { service in
            Supervisor.Child(name: service.rawValue, executable: executable,
                             arguments: ["serve", service.rawValue, "--topology", topologyPath, "--fixtures", fixturesPath,
                                         "--scenario", scenarioPath, "--fault-control", "--exit-with-parent"]
                                + scenario.defects.enabledNames.flatMap { ["--defect", $0] },
                             logPath: logDirectory + "/\(service).log")
        })
        supervisor.log = { journal.note($0) }
        try supervisor.wrapAsEnvironmentSays()
        if let kernel {
            // Inside its namespace first (`ip netns exec` becomes the service, or the tool that
            // ERP_WRAP asks for, so signals still reach them).
            for service in services { supervisor.wrappers[service.rawValue] = kernel.wrapper(for: service) + (supervisor.wrappers[service.rawValue] ?? []) }
        }
        // Scripted crashes are the only restarts that should happen; a child that dies on its own
        // is still restarted, as in production, and shows in serviceStarts.
        supervisor.restartPolicy.countMax = 20

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
        let http = LoopbackHTTPClient(host: httpHost, port: httpPort)
        // Ctrl-C or SIGTERM: stop the services, drop the unfinished report, exit 130.
        let interrupts = TerminationSignals {
            journal.note("interrupted: stopping every service")
            supervisor.stop()
            kernel?.remove()
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: scratch)
            FileHandle.standardError.put(Data("erp: interrupted: every service stopped; the run's report is not written\n".utf8))
            exit(130)
        }
        let skews = scenario.faults.compactMap { fault -> Duration? in
            if case .clockSkew(_, let by) = fault.kind { return by < .zero ? .zero - by : by }
            return nil
        }
        let control = Control(transport: transport, clock: clock, journal: journal, skewAllowance: skews.max() ?? .zero)
        let plan = FaultPlan(scenario: scenario, exempt: [Self.runnerNode.rawValue])
        let injector = ZeroMQFaultInjector(plan: plan, supervisor: supervisor, control: control, services: services,
                                           startTimeout: startTimeout, databaseDirectory: databaseDirectory, kernel: kernel)
        running = Running(services: services, scratch: scratch, databaseDirectory: databaseDirectory, logDirectory: logDirectory,
                          httpPort: httpPort, apiKey: apiKey, metricsPorts: metricsPorts, metricsHosts: metricsHosts, kernel: kernel,
                          journal: journal, supervisor: supervisor,
                          context: context, authenticator: authenticator, executor: executor, clock: clock, transport: transport,
                          http: http, interrupts: interrupts, control: control, injector: injector)
        if scenario.devices.enabled {
            let io = try IOThread.start(context: context, name: "devices")
            running?.deviceIO = io
            running?.deviceLink = DeviceProtocolLink(io: io, endpoint: deviceEndpoint, serverPublicKey: try keys.publicKey(of: .iotGateway),
                                                     keys: deviceKeys, loses: { plan.losesWorkload(NodeName(ServiceName.iotGateway)) })
        }
        do {
            try await transport.start()
            try supervisor.start()
            journal.note("services starting; gateway http://\(httpHost):\(httpPort)")
            try await waitUntilReady(services, control: control, http: http)
            journal.note("every service answers")
            // Readable by other tasks only now: a process that has not answered yet may still be
            // a wrapper that has not started the service under it (a soak sampled the shell of
            // ERP_WRAP's script as order, 1 MiB of memory, on a loaded machine).
            supervisorSlot.withLock { $0 = supervisor }
            await control.push(plan, to: services)
        } catch {
            journal.note("run failed: \(error)")
            await tearDown()
            throw error
        }
        started = true
    }

    public func startWorkload(_ scenario: Scenario, fixtures: Fixtures, seed: UInt64) async throws {
        guard let running else { preconditionFailure("services start before the workload") }
        chaosStart = running.clock.now
        cpuAtStart = Self.cpu(of: running)
        let runtime = ZeroMQRuntime(node: Self.runnerNode, transport: running.transport, executor: running.executor,
                                    dataDirectory: running.scratch, clock: running.clock, random: SeededRandomSource(seed: seed))
        // The workload's way in is cut where the simulated client's would be (an isolated gateway).
        let plan = running.injector.plan
        let gatewayCut: @Sendable () -> Bool = { plan.losesWorkload(NodeName(ServiceName.gateway)) }
        let client = OrderWorkloadClient(runtime: runtime, api: HTTPOrderAPI(client: running.http, apiKey: running.apiKey, statuses: httpStatuses,
                                                                             loses: gatewayCut),
                                         workload: scenario.workload, fixtures: fixtures, until: running.clock.now + scenario.duration)
        // Devices speak the device protocol to the IoT gateway's device door, each with its own key.
        let healPhase = max(scenario.heal, healMinimum)
        let link: any DeviceLink = running.deviceLink ?? TransportDeviceLink(transport: running.transport)
        // Devices report until a heartbeat before the heal phase's planned end.
        let devicesQuietAfter = scenario.duration + healPhase - scenario.devices.heartbeat
        let devices = DeviceWorkloadClient(runtime: runtime, link: link, workload: scenario.devices, fixtures: fixtures,
                                           chaosEnd: running.clock.now + scenario.duration,
                                           until: running.clock.now + devicesQuietAfter)
        if scenario.devices.enabled {
            // The gateway's silence allowance after the last report, and its next heartbeat.
            let settings = scenario.serviceSettings(fixtures: fixtures)
            lastDeclaration = ContinuousClock.now + devicesQuietAfter + settings.deviceSilenceMax + settings.deviceHeartbeatInterval
        }
        let store = StoreWorkloadClient(runtime: runtime, api: HTTPOrderAPI(client: running.http, apiKey: running.apiKey, loses: gatewayCut),
                                        workload: scenario.store, fixtures: fixtures, until: running.clock.now + scenario.duration)
        await running.executor.run {
            client.start()
            devices.start()
            store.start()
        }
        self.client = client
        self.devices = devices
        self.store = store
        let reports = self.reports, services = running.services, control = running.control
        poller = Task { await reports.poll(services, control: control, faults: plan, every: .seconds(1)) }
    }

    public func runChaosPhase(_ timeline: [FaultStep], chaos: Duration) async {
        guard let running else { preconditionFailure("services start before faults") }
        let chaosStart = ContinuousClock.now
        for step in timeline where step.at < chaos {
            try? await Task.sleep(until: chaosStart + step.at)
            running.journal.note(step.summaryText)
            step.apply(to: running.injector)
            await running.injector.propagate()
        }
        try? await Task.sleep(until: chaosStart + chaos)
        await running.injector.awaitRestarts()
        running.injector.heal()
        await running.injector.propagate()
        await running.injector.awaitRestarts()
    }

    public func runHealPhase(_ heal: Duration) async -> Duration {
        guard let running, let client else { preconditionFailure("the workload starts before the heal phase") }
        // No new orders; flows finish. It lasts its time, and longer (up to as long again) while
        // the client still waits for an order's outcome.
        let healPhase = max(heal, healMinimum)
        let healStart = ContinuousClock.now
        try? await Task.sleep(until: healStart + healPhase)
        let store = self.store
        while !(await running.executor.run { client.isDone && store?.isDone != false }) && ContinuousClock.now < healStart + healPhase * 2 {
            try? await Task.sleep(for: .milliseconds(200))
        }
        running.journal.note(String(format: "heal phase over after %.1fs", (ContinuousClock.now - healStart).seconds))
        let losses = running.injector.plan.current.workloadLosses
        if !losses.isEmpty {
            running.journal.note("the workload's messages lost to isolations (requests, answers, device messages): "
                                 + losses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        await settle(running)
        poller?.cancel()
        // The last word of every process: on a loaded machine the periodic polls may all have
        // missed one, so this one waits longer and asks again.
        let silent = await reports.collect(running.services, control: running.control, faults: running.injector.plan,
                                                   timeout: .seconds(3), attempts: 3)
        if !silent.isEmpty {
            running.journal.note("no final report from \(silent.map(\.rawValue).joined(separator: ", ")): their figures are missing from the summary")
        }
        await saveMetrics(running)
        for (service, end) in Self.cpu(of: running) {
            if let start = cpuAtStart[service], start.pid == end.pid {
                serviceCPUSeconds[service] = end.seconds - start.seconds
                serviceContextSwitches[service] = end.contextSwitches - start.contextSwitches
            } else {
                // A process that died and came back: its first incarnation's CPU went with it.
                serviceCPUNotMeasured.append(service)
            }
        }
        serviceCPUNotMeasured.sort()
        return healPhase
    }

    /// Waits, before the services stop, until what the run set in motion has come to rest. The
    /// devices stop reporting a heartbeat before the heal phase's planned end, so the IoT gateway
    /// may still declare some of them offline (after `deviceSilenceMax` without a report, at its
    /// next heartbeat), and those events, like the last flows' events, must still reach every
    /// consumer. Stopping before they do left the shop a revision behind the gateway, and the
    /// checker called that a divergence (iot-partition, restock-race, report-rebuild over ZeroMQ
    /// on a loaded machine). So: wait for the gateway's last possible declaration, then until
    /// every outbox is empty and the bus has nothing pending, at most `settleMaximum`.
    private func settle(_ running: Running) async {
        let start = ContinuousClock.now
        if let lastDeclaration { try? await Task.sleep(until: lastDeclaration) }
        var left = UnsettledWork.read(databaseDirectory: running.databaseDirectory)
        while !left.isEmpty && ContinuousClock.now < start + settleMaximum {
            try? await Task.sleep(for: .milliseconds(200))
            left = UnsettledWork.read(databaseDirectory: running.databaseDirectory)
        }
        let waited = String(format: "%.1fs", (ContinuousClock.now - start).seconds)
        running.journal.note(left.isEmpty ? "settled after \(waited)" : "not settled after \(waited): " + left.joined(separator: "; "))
    }

    /// A service process's CPU time so far (user + system) and its threads' context switches.
    private struct ProcessCPU {
        var pid: Int32
        var seconds: Double
        var contextSwitches: Int
    }

    /// Each service process's CPU time and context switches so far (from /proc), by service.
    private static func cpu(of running: Running) -> [String: ProcessCPU] {
        var out: [String: ProcessCPU] = [:]
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        for service in running.services {
            guard let supervised = running.supervisor.processIdentifier(of: service.rawValue) else { continue }
            let pid = ProcessProbe.serviceProcess(service.rawValue, under: supervised)
            guard let fields = ProcStat.fields(of: pid), fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            out[service.rawValue] = ProcessCPU(pid: pid, seconds: (user + system) / ticks, contextSwitches: ProcStat.contextSwitches(of: pid) ?? 0)
        }
        return out
    }

    public func finish() async throws -> BackendOutcome {
        guard let running, let client else { preconditionFailure("a run finishes after it started") }
        let devices = self.devices
        let store = self.store
        let (history, deviceRecords, storeOutcome) = await running.executor.run {
            (client.history, devices?.records ?? [], store?.outcome ?? StoreOutcome())
        }
        let starts = running.supervisor.startCount
        // The runner's own calls (fault control, the services' reports) are requests the services
        // received: counted as sent too, or `delivered` exceeded `sent` by about one a service a
        // second with nothing duplicated (a performance checker's trial).
        let runnerCalls = running.transport.counters.callsStarted
        let kernelCuts = running.kernel?.routesAdded
        await tearDown()
        running.journal.note("services stopped")
        self.history = history
        var outcome = BackendOutcome(history: history, databaseDirectory: running.databaseDirectory)
        outcome.clockSkews = running.injector.clockSkews
        outcome.devices = deviceRecords
        outcome.store = storeOutcome
        outcome.chaosStart = chaosStart
        for service in running.services { outcome.serviceStarts[service.rawValue] = starts[service.rawValue] ?? 0 }
        outcome.recoveredSagas = Self.recoveredSagas(inLog: running.logDirectory + "/order.log")
        let reports = self.reports
        measuredLatency = reports.latencyByNode()
        outcome.fill = { summary in
            reports.fill(&summary)
            summary.network.sent += runnerCalls
            summary.network.kernelCuts = kernelCuts
        }
        return outcome
    }

    // MARK: Steps

    private func tearDown() async {
        guard let running else { return }
        poller?.cancel()
        running.interrupts.cancel()
        await running.deviceLink?.close()
        running.supervisor.stop()
        running.kernel?.remove()
        await running.http.shutdown()
        await running.transport.stop()
        running.executor.shutdown()
        await running.authenticator.stop()
        await running.deviceIO?.stop()
        running.context.terminate()
        try? FileManager.default.removeItem(atPath: running.scratch)
    }

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

    /// Scrapes every service's Prometheus metrics (RPC served and called per method; HTTP routes
    /// at the gateway) into `metrics/<service>.prom`: the per-call latency percentiles of this
    /// run, as the last incarnation of each process saw them.
    private func saveMetrics(_ running: Running) async {
        let directory = outputDirectory + "/metrics"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for service in running.services {
            guard let port = service == .gateway ? running.http.port : running.metricsPorts[service] else { continue }
            do {
                let response: LoopbackHTTPClient.Response
                if let host = running.metricsHosts[service] {
                    let client = LoopbackHTTPClient(host: host, port: port)
                    do { response = try await client.send(.GET, "/metrics", timeout: .seconds(2)) } catch {
                        await client.shutdown()
                        throw error
                    }
                    await client.shutdown()
                } else {
                    response = try await running.http.send(.GET, "/metrics", port: port, timeout: .seconds(2))
                }
                try response.body.write(to: URL(fileURLWithPath: directory + "/\(service).prom"))
            } catch {
                running.journal.note("could not read the metrics of \(service): \(error)")
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
}

public struct RunnerError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
