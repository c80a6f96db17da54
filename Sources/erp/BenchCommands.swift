import ArgumentParser
import ERPBenchmarks
import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures (with --json, one JSON object as the last line).",
        subcommands: [ScenarioBench.self, SimMesh.self, TransportBench.self])
}

struct SimMesh: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim-mesh",
        abstract: "The RPC-mesh workload of shared/bench (c_mesh.c, simpy_mesh.py) through SimWorld and SimTransport.")

    @Option(help: "Virtual seconds to simulate.") var virtualSeconds: Double = 10
    @Option(help: "Client tasks.") var clients: Int = 1_000
    @Option(help: "Server nodes.") var servers: Int = 10
    @Option(name: .customLong("c-mesh"), help: ArgumentHelp("The bare C loop built from shared/bench/c_mesh.c: run before and after ours, same virtual seconds, for the ratio.", valueName: "binary"))
    var cMesh: String?
    @Flag(help: "Print one JSON object with the figures as the last line.") var json = false

    func validate() throws {
        guard virtualSeconds > 0 else { throw ValidationError("--virtual-seconds must be positive") }
        guard clients > 0, servers > 0 else { throw ValidationError("--clients and --servers must be positive") }
    }

    func run() throws {
        var bench = MeshBenchmark()
        bench.clientCount = clients
        bench.serverCount = servers
        bench.virtualDuration = .nanoseconds(Int64(virtualSeconds * 1e9))
        var baseline: [Double] = []
        if let cMesh { baseline.append(try Self.runC(cMesh, virtualSeconds)) }
        let r = try bench.run()
        if let cMesh { baseline.append(try Self.runC(cMesh, virtualSeconds)) }
        print(String(format: "swift-sim delivered=%d wall_s=%.3f msgs_per_wall_s=%.0f virtual_per_wall=%.2f",
                     r.delivered, r.wallSeconds, r.deliveriesPerWallSecond, r.virtualPerWall))
        var figures: [String: Any] = ["bench": "sim-mesh", "delivered": r.delivered, "wall_s": r.wallSeconds,
                                      "deliveries_per_wall_s": r.deliveriesPerWallSecond.rounded(), "virtual_per_wall": r.virtualPerWall]
        if !baseline.isEmpty {
            let c = baseline.reduce(0, +) / Double(baseline.count)
            let ratio = r.deliveriesPerWallSecond / c
            print(String(format: "c loop (before and after): %.0f msgs_per_wall_s; ours/C = %.3f (target >= 0.3)", c, ratio))
            figures["c_deliveries_per_wall_s"] = c.rounded()
            figures["ratio_to_c"] = (ratio * 1000).rounded() / 1000
        }
        if json { printJSON(figures) }
    }

    /// The C loop's deliveries per wall second (it prints `msgs_per_wall_s=N`).
    static func runC(_ binary: String, _ virtualSeconds: Double) throws -> Double {
        let output = try runTool(binary, ["\(virtualSeconds)"])
        guard let field = output.split(separator: " ").first(where: { $0.hasPrefix("msgs_per_wall_s=") }),
              let value = Double(field.dropFirst("msgs_per_wall_s=".count)) else {
            throw ValidationError("\(binary) did not print msgs_per_wall_s=N: \(output)")
        }
        return value
    }
}

/// `erp bench scenario SCENARIO`: one simulated run of a scenario, timed: orders per wall-second,
/// virtual time per wall time, CPU per order and peak RSS. The run is the same as `erp run`'s
/// (trace hashed, history checked, reports written) so the figures are what a user waits for.
struct ScenarioBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Time one simulated run of a scenario: orders per wall-second, virtual/real ratio, CPU per order, peak RSS.",
        discussion: """
            The whole run is timed: the world, the workload, the trace hash and the consistency check \
            of the databases, as `erp run` does them. Peak RSS is the process's high-water mark. Build \
            with -c release for figures worth quoting. Exit status 0 also when invariants fail (the \
            figures are still printed, with the verdict); 1 on bad input.
            """)

    @Argument(help: "The scenario file (YAML).") var scenario: String
    @Option(help: "Orders per second offered (default: the scenario's).") var rate: Double?
    @Option(help: ArgumentHelp("Length of the chaos phase (default: the scenario's).", valueName: "duration")) var duration: String?
    @Option(help: "Seed (default: the scenario's).") var seed: UInt64?
    @Option(name: .customLong("out"), help: "Keep the run's reports here (default: a temporary folder, removed).") var outputDirectory: String?
    @Flag(help: "Print one JSON object with the figures as the last line.") var json = false

    func run() async throws {
        var loaded: Scenario
        do { loaded = try ScenarioLoader.load(path: scenario) } catch {
            FileHandle.standardError.write(Data("erp bench scenario: \(error)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        if let duration {
            guard let chaos = Duration(parsing: duration), chaos > .zero else { throw ValidationError("--duration must be a positive duration such as 40s") }
            loaded = loaded.scaled(toChaos: chaos)
        }
        if let rate {
            guard rate > 0, rate <= Scenario.Limits.orderRatePerSecondMax,
                  rate * loaded.duration.seconds <= Scenario.Limits.orderCountMax else {
                throw ValidationError("--rate must be positive and offer at most \(Int(Scenario.Limits.orderCountMax)) orders over the chaos phase")
            }
            loaded.workload.ratePerSecond = rate
        }
        let seed = self.seed ?? loaded.seed
        let fixtures = try loadFixtures(resolve(loaded.fixturesPath, relativeTo: scenario))
        let out = outputDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("erp-bench-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { if outputDirectory == nil { try? FileManager.default.removeItem(atPath: out) } }

        let cpuBefore = ResourceUsage.now()
        let started = ContinuousClock.now
        let backend = try SimulationBackend(scenario: loaded, seed: seed, fixtures: fixtures, outputDirectory: out)
        let summary = try await ScenarioRunner(scenario: loaded, fixtures: fixtures, seed: seed, outputDirectory: out,
                                               reproduce: "erp run \(scenario) --seed \(seed)").run(on: backend)
        let wall = (ContinuousClock.now - started).seconds
        let cpuAfter = ResourceUsage.now()
        let cpu = cpuAfter.cpuSeconds - cpuBefore.cpuSeconds
        let orders = summary.orders.submitted
        let virtual = Double(summary.chaosMilliseconds + summary.healMilliseconds) / 1000
        let figures: [String: Any] = [
            "bench": "scenario", "scenario": loaded.name, "seed": seed, "rate_offered_per_s": loaded.workload.ratePerSecond,
            "orders": orders, "confirmed": summary.orders.confirmed, "wall_s": (wall * 1000).rounded() / 1000,
            "orders_per_wall_s": (Double(orders) / wall).rounded(), "virtual_s": virtual, "virtual_per_wall": (virtual / wall * 100).rounded() / 100,
            "cpu_s": (cpu * 1000).rounded() / 1000, "cpu_ms_per_order": orders > 0 ? (cpu / Double(orders) * 1e5).rounded() / 100 : 0,
            "peak_rss_mib": (Double(cpuAfter.peakResidentKiB) / 1024).rounded(), "trace_lines": summary.traceLines,
            "trace_hash": summary.traceHash ?? "", "invariants_pass": summary.invariantsPass,
        ]
        print(String(format: "%@ seed %llu: %d orders (%.0f/s offered over %.0f virtual s) in %.2f wall s", loaded.name, seed, orders,
                     loaded.workload.ratePerSecond, virtual, wall))
        print(String(format: "  %.0f orders per wall-second; %.1fx real time; %.2f ms CPU per order; peak RSS %.0f MiB; %d trace lines; invariants %@",
                     Double(orders) / wall, virtual / wall, orders > 0 ? cpu / Double(orders) * 1000 : 0,
                     Double(cpuAfter.peakResidentKiB) / 1024, summary.traceLines, summary.invariantsPass ? "hold" : "FAIL"))
        if json { printJSON(figures) }
    }
}

/// The process's CPU time and peak resident set so far (getrusage).
struct ResourceUsage {
    var cpuSeconds: Double
    var peakResidentKiB: Int

    static func now() -> ResourceUsage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return ResourceUsage(cpuSeconds: seconds(usage.ru_utime) + seconds(usage.ru_stime), peakResidentKiB: usage.ru_maxrss)
    }
}

/// One JSON object on one line, keys sorted: the last line of a bench with --json.
func printJSON(_ figures: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys]) else { return }
    print(String(decoding: data, as: UTF8.self))
}

/// Runs a tool to its end and returns what it printed.
func runTool(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

struct TransportBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "ZeroMQ transport RPC vs raw libzmq on loopback, in one run: round trip and pipelined (window 100).",
        discussion: """
            The transport and raw libzmq are measured in alternating rounds (transport, then raw, for \
            each shape), and the ratios printed are medians of the per-round ratios: on a shared \
            machine the figures drift by tens of per cent within a minute, raw libzmq's too. Build \
            with -c release for figures worth quoting.

            Each round also measures the socket layer alone: the transport's executors, hosted \
            sockets and request frames, echoed with no RPC work. Its distance to raw libzmq is \
            the I/O layer's cost; the transport's distance to it is the RPC layer's.
            """)

    static let window = 100

    @Option(help: "Sequential round trips, over all rounds.") var roundTrips: Int = 10_000
    @Option(help: "Pipelined calls, over all rounds.") var pipelined: Int = 50_000
    @Option(help: "Payload bytes.") var payload: Int = 64
    @Option(help: "Alternating rounds (transport, socket layer, then raw).") var rounds: Int = 5
    @Flag(help: "Print one JSON object with the figures as the last line.") var json = false

    func validate() throws {
        guard rounds > 0, payload > 0 else { throw ValidationError("--rounds and --payload must be positive") }
        guard roundTrips >= rounds else { throw ValidationError("--round-trips must be at least --rounds (\(rounds))") }
        guard pipelined >= Self.window * rounds else {
            throw ValidationError("--pipelined must be at least the window (\(Self.window)) times --rounds: \(Self.window * rounds)")
        }
    }

    func run() throws {
        let result = try ZeroMQTransportBenchmark(roundTripCount: roundTrips, pipelinedCount: pipelined, window: Self.window,
                                                  payloadSize: payload, rounds: rounds).run()
        print(result)
        if json {
            printJSON(["bench": "transport", "payload_bytes": payload, "rounds": rounds,
                       "round_trip_us": result.transportRoundTrip.seconds * 1e6, "raw_round_trip_us": result.rawRoundTrip.seconds * 1e6,
                       "round_trip_ratio": result.roundTripRatio,
                       "pipelined_calls_per_s": result.transportPipelinedCallsPerSecond.rounded(),
                       "raw_pipelined_calls_per_s": result.rawPipelinedCallsPerSecond.rounded(),
                       "pipelined_ratio": result.pipelinedThroughputRatio,
                       "socket_round_trip_ratio": result.socketRoundTripRatio, "socket_pipelined_ratio": result.socketPipelinedRatio,
                       "wire_path_us": result.wirePath.seconds * 1e6])
        }
    }
}

