import ERPTestSupport
import Foundation
import Testing

/// The bench commands' contract, not their speed (figures are not pass/fail on a shared machine):
/// with --json the last line is one JSON object with the documented figures, and the runs they
/// time really ran (orders placed, invariants judged).
@Suite(.serialized) struct BenchCommandTests {
    static func lastJSON(_ output: String) throws -> [String: Any] {
        let last = try #require(output.split(separator: "\n").last)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(last.utf8))
        } catch {
            // Say what was there instead: the end of the command's output.
            Issue.record("the last line is not JSON (\(error)); the output ended with:\n\(output.suffix(3_000))")
            throw error
        }
        return try #require(object as? [String: Any], "\(output)")
    }

    @Test func scenarioBenchPrintsItsFigures() async throws {
        let result = try await runErp(["bench", "scenario", packageRoot + "/scenarios/happy-path.yaml", "--duration", "2s", "--rate", "30", "--json"])
        #expect(result.status == 0, "\(result.output)")
        let figures = try Self.lastJSON(result.output)
        #expect(figures["bench"] as? String == "scenario")
        #expect((figures["orders"] as? Int ?? 0) > 20)
        #expect((figures["orders_per_wall_s"] as? Double ?? 0) > 0 && (figures["peak_rss_mib"] as? Double ?? 0) > 0)
        #expect((figures["cpu_ms_per_order"] as? Double ?? 0) > 0 && (figures["virtual_per_wall"] as? Double ?? 0) > 0)
        #expect(figures["invariants_pass"] as? Bool == true && (figures["failed_invariants"] as? [String]) == [], "\(figures)")
        #expect((figures["trace_hash"] as? String ?? "").count == 64)
        // No disk fault: the journals stay in memory (SimStorage.memoryWithoutDiskFaults).
        #expect(figures["storage"] as? String == "memory-journal")
        // SQLite's memory statistics were switched off before its first connection (SQLiteTuning).
        #expect(figures["sqlite_memstatus"] as? String == "off")
        #expect(figures["run_exit_status"] as? Int == 0 && figures["expectations_pass"] as? Bool == true, "\(figures)")
        #expect(result.output.contains("/s asked, "), "\(result.output)")
    }

    /// At 300 orders a second happy-path's own stock runs out and many orders are cancelled out of
    /// stock (731 of 1,775 in 6 s; three in four over its 20 s), which skips payment and most events: figures of cheap orders (a performance
    /// checker's trial read 1,105 confirmed of a million as a million orders). `--stock`
    /// multiplies the stock, so that every order runs the whole saga, and says so.
    @Test func scenarioBenchWithStockTimesWholeSagas() async throws {
        let scenario = packageRoot + "/scenarios/happy-path.yaml"
        let bare = try Self.lastJSON(try await runErp(["bench", "scenario", scenario, "--duration", "6s", "--rate", "300", "--json"]).output)
        #expect((bare["cancelled_out_of_stock"] as? Int ?? 0) * 4 > (bare["orders"] as? Int ?? 0), "\(bare)")
        #expect(bare["stock_times"] as? Int == 1)
        let result = try await runErp(["bench", "scenario", scenario, "--duration", "6s", "--rate", "300", "--stock", "100", "--json"])
        let stocked = try Self.lastJSON(result.output)
        #expect(stocked["stock_times"] as? Int == 100 && stocked["cancelled_out_of_stock"] as? Int == 0, "\(stocked)")
        #expect((stocked["orders"] as? Int ?? 0) > 1_500 && stocked["confirmed"] as? Int == stocked["orders"] as? Int, "\(stocked)")
        #expect(stocked["invariants_pass"] as? Bool == true && stocked["run_exit_status"] as? Int == 0, "\(stocked)")
        #expect(!result.output.contains("cancelled out of stock (the fixtures' stock ran out)"), "\(result.output)")
        let refused = try await runErp(["bench", "scenario", scenario, "--stock", "0"])
        #expect(refused.status == 1 && refused.output.contains("--stock must be from 1 to 100000"), "\(refused.output)")
    }

    /// A run whose expectations fail is `erp run`'s exit 4 in the figures too (a performance
    /// checker's trial: `run_exit_status` 0 beside `expectations_pass` false, and the text silent).
    @Test func scenarioBenchCarriesTheRunsVerdict() async throws {
        let result = try await runErp(["bench", "scenario", packageRoot + "/scenarios/happy-path.yaml", "--duration", "2s", "--rate", "1", "--json"])
        #expect(result.status == 0, "\(result.output)")
        let figures = try Self.lastJSON(result.output)
        #expect(figures["expectations_pass"] as? Bool == false && figures["run_exit_status"] as? Int == 4, "\(figures)")
        #expect(result.output.contains("expectation not met: at least"), "\(result.output)")
    }

    /// The mesh and, in the same run, the runtime's floor: what a wait and a task cost alone,
    /// and the ceiling that puts on the mesh. The mesh pays the floor and more, so it cannot have
    /// gone faster than the ceiling.
    @Test func simMeshPrintsItsFiguresAndTheRuntimeFloor() async throws {
        let result = try await runErp(["bench", "sim-mesh", "--virtual-seconds", "0.5", "--clients", "100", "--json"])
        #expect(result.status == 0, "\(result.output)")
        let figures = try Self.lastJSON(result.output)
        #expect(figures["bench"] as? String == "sim-mesh")
        let delivered = figures["delivered"] as? Int ?? 0, achieved = figures["deliveries_per_wall_s"] as? Double ?? 0
        #expect(delivered > 10_000 && achieved > 0, "\(figures)")
        let wait = figures["floor_wait_ns"] as? Double ?? 0, task = figures["floor_task_ns"] as? Double ?? 0
        #expect(wait > 10 && task > 10, "\(figures)")
        let ceiling = try #require(figures["floor_deliveries_per_wall_s"] as? Double)
        #expect(abs(ceiling - 2e9 / (2 * wait + task)) <= 0.01 * ceiling, "\(figures)")
        #expect(ceiling > achieved, "\(figures)")
        #expect(result.output.contains("runtime floor: a wait and wake"))
    }

    @Test func e2eBenchRunsEveryServiceAndJudgesTheDatabases() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-bench-e2e-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["bench", "e2e", "--rate", "20", "--duration", "2s", "--out", out,
                                       "--fixtures", packageRoot + "/fixtures/retail.json", "--json"])
        #expect(result.status == 0, "\(result.output)")
        let figures = try Self.lastJSON(result.output)
        #expect(figures["bench"] as? String == "e2e")
        let orders = figures["orders"] as? Int ?? 0
        #expect(orders > 10)
        #expect((figures["statuses"] as? [String: Int])?["201"] == orders, "every order answered 201: \(figures)")
        let cpu = figures["cpu_ms_per_order"] as? [String: Double] ?? [:]
        for service in ["order", "inventory", "payment", "event-bus", "gateway"] { #expect((cpu[service] ?? 0) > 0, "\(cpu)") }
        // Each service's threads wait for every message they handle: some context switches per
        // order, summed in the total.
        let switches = figures["context_switches_per_order"] as? [String: Double] ?? [:]
        for service in ["order", "inventory", "payment", "event-bus", "gateway"] { #expect((switches[service] ?? 0) >= 1, "\(switches)") }
        let total = figures["context_switches_per_order_total"] as? Double ?? 0
        #expect(abs(total - switches.values.reduce(0, +)) < 0.5 && result.output.contains("context switches per order: "), "\(figures)")
        #expect((figures["p99_ms"] as? Double ?? 0) >= (figures["p50_ms"] as? Double ?? 0))
        #expect(figures["invariants_pass"] as? Bool == true)
        #expect(result.output.contains("invariants: all hold"))
        #expect(figures["cpu_not_measured"] as? [String] == [], "\(figures)")
        // At the default level the services log their state transitions (info).
        let orderLog = try String(contentsOfFile: out + "/rate-20/logs/order.log", encoding: .utf8)
        #expect(orderLog.contains(" info order: "), "\(orderLog.prefix(2_000))")
        // Nothing duplicated or dropped: no request was received that no one sent (the runner's
        // control calls were received and not counted as sent).
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/rate-20/summary.json"))) as? [String: Any])
        let network = try #require(summary["network"] as? [String: Int])
        #expect(network["duplicated"] == 0 && (network["sent"] ?? 0) >= (network["delivered"] ?? .max), "\(network)")
    }

    /// A short soak: every process sampled each interval, the verdict and the samples in
    /// soak.json. Growth over 16 s proves nothing either way, so only the exit status's meaning is
    /// checked (0 steady, 2 not), against the file's own verdict.
    @Test func soakSamplesEveryProcessAndJudges() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-soak-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        // Order runs under a tool that runs it as its child (as heaptrack does, through
        // `ERP_WRAP`): its figures must still be the service's, not the tool's. The tool takes a
        // second to start the service, as a loaded machine may: the samples start only when every
        // service answers, never with the tool itself.
        let wrapper = out + "-wrap.sh"
        defer { try? FileManager.default.removeItem(atPath: wrapper) }
        try "#!/bin/sh\nsleep 1\n\"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
        let result = try await runErp(["soak", "--duration", "16s", "--every", "4s", "--warm-up", "4s", "--rate", "20", "--out", out,
                                       "--fixtures", packageRoot + "/fixtures/retail.json", "--leak-bytes-per-order", "48", "--json"],
                                      environment: ["ERP_WRAP": "order=" + wrapper])
        let figures = try Self.lastJSON(result.output)
        #expect(figures["bench"] as? String == "soak")
        let pass = try #require(figures["pass"] as? Bool)
        #expect(result.status == (pass ? 0 : 2), "\(result.output)")
        #expect(figures["invariants_pass"] as? Bool == true)
        #expect((figures["orders"] as? Int ?? 0) > 200)
        let file = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/soak.json"))) as? [String: Any])
        let samples = try #require(file["samples"] as? [[String: Any]])
        #expect(samples.count >= 4, "\(samples.count) samples")
        let first = try #require(samples.first?["processes"] as? [String: [String: Any]])
        #expect(first.count == 13, "every service process is sampled: \(first.keys.sorted())")
        #expect((first["order"]?["rss_kib"] as? Int ?? 0) > 1_000 && (first["order"]?["fds"] as? Int ?? 0) > 3)
        // The private part of the resident set, and the clients' connections, sampled too.
        #expect((first["order"]?["anon_kib"] as? Int ?? 0) > 1_000 && first["gateway"]?["client_connections"] is Int)
        // Each process's heap as its allocator counts it, from its control report (read every
        // second: the first sample may come before the first report), SQLite's part apart.
        let last = try #require(samples.last?["processes"] as? [String: [String: Any]])
        for service in ["order", "event-bus", "gateway"] {
            let inUse = last[service]?["heap_in_use_bytes"] as? Int ?? 0, sqlite = last[service]?["heap_sqlite_bytes"] as? Int ?? -1
            #expect(inUse > 500_000 && sqlite >= 0 && sqlite < inUse, "\(service): \(last[service] ?? [:])")
        }
        #expect((last["order"]?["heap_sqlite_bytes"] as? Int ?? 0) > 0, "order's page cache: \(last["order"] ?? [:])")
        // Order has served and made calls by then: its latency histograms hold pages of counts.
        let histograms = last["order"]?["heap_histogram_bytes"] as? Int ?? 0
        #expect(histograms > 0 && histograms % 8_192 == 0, "order's histograms: \(last["order"] ?? [:])")
        #expect(figures["heap_growth_percent_max"] is Double && figures["total_rss_growth_percent"] is Double)
        // A heap's growth is also judged per order (`LeakRule`), against the bound given.
        #expect(figures["heap_bytes_per_order_max"] is Double && figures["leak_bytes_per_order"] as? Double == 48)
        let markdown = try String(contentsOfFile: out + "/soak.md", encoding: .utf8)
        #expect(markdown.contains("| order |") && markdown.contains("Verdict: ") && markdown.contains("heap in use: ours (of which latency histograms) + SQLite's"))
        #expect(markdown.contains("bytes per order") && (!pass || markdown.contains("more than 48 bytes per order")), "\(markdown)")
    }

    /// `scripts/ab-scenario.sh`: two builds (here one, twice) on one scenario at once, a ratio per
    /// pair and their median, and whether the traces agree.
    @Test func abScenarioComparesTwoBuildsAtOnce() async throws {
        let script = packageRoot + "/scripts/ab-scenario.sh"
        let scenario = packageRoot + "/scenarios/happy-path.yaml"
        let result = try await runProgram(script, [erpBinary, erpBinary, "1", "--", scenario, "--duration", "2s", "--rate", "30"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("pair 1: A ") && result.output.contains("B/A") && result.output.contains("invariants True / True; same trace"), "\(result.output)")
        #expect(result.output.contains("B/A, CPU per order: median") && result.output.contains(", 1 pair)"), "\(result.output)")
        let unmarked = try await runProgram(script, [erpBinary, erpBinary, "1", scenario])
        #expect(unmarked.status == 1 && unmarked.output.contains("the bench's arguments follow --"), "\(unmarked.output)")
        let pairs = try await runProgram(script, [erpBinary, erpBinary, "two", "--", scenario])
        #expect(pairs.status == 1 && pairs.output.contains("PAIRS must be a whole number above 0, not two"), "\(pairs.output)")
        let missing = try await runProgram(script, [erpBinary, "/nonexistent/erp", "--", scenario])
        #expect(missing.status == 1 && missing.output.contains("no executable /nonexistent/erp"), "\(missing.output)")
    }

    /// ERP_LOG_LEVEL reaches every service a bench starts: at warning, no state transition is
    /// logged, and the orders go through as before.
    @Test func theServicesLogAtTheLevelTheEnvironmentSays() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-bench-quiet-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["bench", "e2e", "--rate", "20", "--duration", "2s", "--out", out,
                                       "--fixtures", packageRoot + "/fixtures/retail.json"], environment: ["ERP_LOG_LEVEL": "warning"])
        #expect(result.status == 0 && result.output.contains("invariants: all hold"), "\(result.output)")
        for service in ["order", "inventory", "event-bus", "report"] {
            let log = try String(contentsOfFile: out + "/rate-20/logs/\(service).log", encoding: .utf8)
            #expect(!log.contains(" info \(service): "), "\(service): \(log.prefix(2_000))")
        }
        let wrong = try await runErp(["up", "--log-level", "loud"])
        #expect(wrong.status != 0 && wrong.output.contains("--log-level loud is not a level: give one of trace, debug, info"), "\(wrong.output)")
        // A topology that is not there: were the level not checked first, the service would stop
        // on that (and not serve for ever).
        let wrongEnvironment = try await runErp(["serve", "order", "--topology", "/nonexistent/topology.yaml"], environment: ["ERP_LOG_LEVEL": "chatty"])
        #expect(wrongEnvironment.status != 0 && wrongEnvironment.output.contains("ERP_LOG_LEVEL chatty is not a level"), "\(wrongEnvironment.output)")
    }

    @Test func badBenchArgumentsAreRefused() async throws {
        let result = try await runErp(["bench", "e2e", "--rate", "0"])
        #expect(result.status == 1 && result.output.contains("--rate must be above 0 and at most 20000"), "\(result.output)")
        let scenario = try await runErp(["bench", "scenario", "/nonexistent.yaml"])
        #expect(scenario.status == 1 && scenario.output.contains("nonexistent.yaml"))
        let soak = try await runErp(["soak", "--duration", "5m"])
        #expect(soak.status != 0 && soak.output.contains("give --rate, or --capacity"), "\(soak.output)")
        // Samples at 30, 60 and 90 s after the warm-up: one per half and a third, too few to judge.
        // A soak that would fill the disk is refused before it starts: 20,000 orders/s for a day is
        // about 12 TB of databases and logs.
        let huge = try await runErp(["soak", "--rate", "20000", "--duration", "24h", "--out", FileManager.default.temporaryDirectory.path + "/erp-soak-never"])
        #expect(huge.status != 0 && huge.output.contains("a soak of 1728000000 orders writes about 12096.0 GB") && huge.output.contains("GB free"), "\(huge.output)")
        #expect(!FileManager.default.fileExists(atPath: FileManager.default.temporaryDirectory.path + "/erp-soak-never"))
        let negative = try await runErp(["soak", "--rate", "10", "--leak-bytes-per-order", "-1"])
        #expect(negative.status != 0 && negative.output.contains("--leak-bytes-per-order must be 0 or more"), "\(negative.output)")
        let short = try await runErp(["soak", "--rate", "10", "--duration", "90s", "--every", "30s", "--warm-up", "30s"])
        #expect(short.status != 0 && short.output.contains("leave 3 sample(s) after the warm-up"), "\(short.output)")
    }
}
