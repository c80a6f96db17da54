import ArgumentParser
import ERPCore
import ERPReports
import ERPScenario
import ERPServices
import ERPZeroMQBackend
import Foundation

/// `erp crash-matrix`: every service of the topology killed with SIGKILL under load, one run per
/// service, on real processes; then the bus and order each stopped (SIGSTOP) for 10 s. Each cell
/// is a ZeroMQ run of its own (orders, device reports and vends through HTTP and the device
/// protocol), judged from the databases after the supervisor restarted the victim and the system
/// healed. Writes one report per cell and the table, matrix.md.
struct CrashMatrix: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-matrix",
        abstract: "Kill -9 every service under load (and SIGSTOP the bus and order for 10 s), one real-process run each; a table of the invariants.",
        discussion: """
            Each cell runs every service as a process (as `erp up` does) with orders (--rate), \
            device reports from every fixture device and vends, kills the cell's service with \
            SIGKILL a third of the way into --duration and lets the supervisor start it again 1 s \
            later; the pause cells stop the bus or order for 10 s instead. The circuit breakers \
            reset after --breaker-reset (the seed's 30 s would outlast a short heal phase). After the heal phase the \
            invariants are judged from the databases: no accepted order lost, no double charge, \
            stock conserved, every event applied once, and the rest of the checker's list. Reports \
            go to DIR/CELL/, the table to DIR/matrix.md (and matrix.json). Exit status 0 when \
            every cell held every invariant, 2 otherwise, 1 on bad input.
            """)

    @Option(parsing: .unconditional, help: "Orders per second.") var rate: Double = 20
    @Option(parsing: .unconditional, help: ArgumentHelp("Length of each cell's chaos phase (real time).", valueName: "duration")) var duration = "9s"
    @Option(help: "Only these services (comma-separated; default: every service of the topology, then the pause cells).")
    var services: String?
    @Option(help: "The scenario the cells start from (workload, resilience); its faults are replaced.")
    var base = "scenarios/happy-path.yaml"
    @Option(name: .customLong("out"), help: "Output folder.") var outputDirectory = "reports/crash-matrix"
    @Option(name: .customLong("breaker-reset"), parsing: .unconditional, help: ArgumentHelp("The circuit breakers' reset timeout (the seed's is 30s; the heal phase lasts at least this plus 12s).", valueName: "duration"))
    var breakerReset = "3s"

    func run() async throws {
        guard let chaos = Duration(parsing: duration), chaos >= .seconds(3), chaos <= .seconds(600) else {
            throw ValidationError("--duration must be from 3s to 10m, such as 9s")
        }
        guard rate > 0, rate <= 1_000 else { throw ValidationError("--rate must be above 0 and at most 1000 orders per second, not \(rate)") }
        guard let reset = Duration(parsing: breakerReset), reset > .zero, reset <= .seconds(300) else {
            throw ValidationError("--breaker-reset must be a duration from 1ms to 5m, such as 3s")
        }
        var template: Scenario
        do { template = try ScenarioLoader.load(path: base) } catch {
            FileHandle.standardError.put(Data("erp crash-matrix: \(error)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        // What no cell could run is refused before any runs, as bad input (each cell failed on it,
        // and the matrix exited 2, "an invariant failed").
        if let problem = ZeroMQBackend.simulationOnly(in: template) {
            FileHandle.standardError.put(Data("erp crash-matrix: --base \(base): \(problem)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        template = template.scaled(toChaos: chaos, keepingHealFloor: false) // real processes: see `erp run`
        template.faults = []
        template.expect = Scenario.Expectations()
        template.workload.ratePerSecond = rate
        template.devices.enabled = true
        template.devices.heartbeat = .seconds(1)
        template.store.vendRatePerSecond = max(1, rate / 10)
        // A breaker opened by the kill lets its first trial through only after its reset timeout:
        // the heal phase must outlast it for the stuck sagas to finish.
        template.resilience.defaultPolicy.circuitBreaker.resetTimeout = reset
        template.heal = max(template.heal, reset + .seconds(12))
        let all: [ServiceName] = ServiceCatalog.startOrder
        var victims = all
        var pauses: [ServiceName] = [.eventBus, .order]
        if let services {
            victims = []
            let names = services.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
            // An empty list would run no cell and pass: a CI script whose variable came out empty.
            guard !names.contains("") else {
                throw ValidationError("--services: an empty service name in '\(services)'; give services such as order,inventory")
            }
            for name in names {
                guard let service = ServiceName(named: name) else {
                    throw ValidationError("--services: unknown service '\(name)'; known: \(all.map(\.rawValue).joined(separator: ", "))")
                }
                victims.append(service)
            }
            pauses = []
        }
        let fixturesPath = URL(fileURLWithPath: resolve(template.fixturesPath, relativeTo: base)).standardizedFileURL.path
        let fixtures = try loadFixtures(fixturesPath)
        let out = URL(fileURLWithPath: outputDirectory).standardizedFileURL.path
        // The matrix's table goes at the top and a folder per cell under it: a stranger's folder is
        // refused before any cell runs, as every other --out is.
        do { try OutputFolder.claim(out) } catch { throw ValidationError("--out \(error)") }
        let at = Duration.milliseconds(chaos.nanoseconds / 3_000_000)

        var plan: [(name: String, fault: ScheduledFault)] = victims.map {
            ("kill-\($0.rawValue)", ScheduledFault(at: at, duration: nil, kind: .crash(NodeName($0), restartAfter: .seconds(1))))
        }
        plan += pauses.map { ("stop-\($0.rawValue)", ScheduledFault(at: at, duration: .seconds(10), kind: .pause(NodeName($0)))) }
        var cells: [CrashMatrixTable.Cell] = []
        for (index, entry) in plan.enumerated() {
            var scenario = template
            scenario.name = "crash-matrix-" + entry.name
            scenario.faults = [entry.fault]
            if case .pause = entry.fault.kind { scenario.heal = max(scenario.heal, .seconds(20)) }
            let directory = out + "/" + entry.name
            try freshDirectory(directory)
            let scenarioPath = directory + "/scenario.yaml"
            try ScenarioWriter.yaml(scenario, header: ["Written by erp crash-matrix"], fixturesPath: fixturesPath)
                .write(toFile: scenarioPath, atomically: true, encoding: .utf8)
            print("[\(index + 1)/\(plan.count)] \(entry.name): \(entry.fault.summaryText)")
            let summary: RunSummary
            do {
                summary = try await runOverZeroMQ(scenario, scenarioPath: scenarioPath, fixturesPath: fixturesPath, fixtures: fixtures,
                                                  seed: scenario.seed, into: directory, reproduce: erpCommandLine(["run", scenarioPath, "--mode", "zmq"])).summary
            } catch {
                print("  could not run: \(error)")
                cells.append(CrashMatrixTable.Cell(name: entry.name, fault: entry.fault.summaryText, invariantsPass: false, failed: ["run failed: \(error)"],
                                  submitted: 0, confirmed: 0, cancelled: 0, pending: 0, restarts: 0, p99: 0, report: directory,
                                  notJudged: "the cell could not run: \(error)"))
                continue
            }
            let failed = summary.failedInvariants
            let restarts = summary.serviceStarts.values.reduce(0) { $0 + max(0, $1 - 1) }
            let cell = CrashMatrixTable.Cell(name: entry.name, fault: entry.fault.summaryText, invariantsPass: failed.isEmpty, failed: failed,
                            submitted: summary.orders.submitted, confirmed: summary.orders.confirmed, cancelled: summary.orders.cancelled,
                            pending: summary.orders.pending, restarts: restarts, p99: summary.latency["orderPlacement"]?.p99 ?? 0,
                            report: directory, notJudged: summary.databasesDamaged ? "a database is damaged (databases-intact); the rest reads the databases" : nil)
            print("  " + (failed.isEmpty ? "every invariant held" : "FAILED: " + failed.joined(separator: ", "))
                  + "; \(cell.submitted) orders, \(cell.confirmed) confirmed, \(cell.pending) pending; \(restarts) restarts")
            cells.append(cell)
        }
        let table = CrashMatrixTable.text(cells, rate: rate, chaos: chaos)
        try table.write(toFile: out + "/matrix.md", atomically: true, encoding: .utf8)
        try writeJSON(cells, to: out + "/matrix.json")
        print("")
        print(table)
        if !cells.allSatisfy(\.invariantsPass) { throw ExitCode(ExitStatus.consistency) }
    }
}
