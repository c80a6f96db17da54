import ERPCore
import ERPReports
import Foundation
import ERPTestSupport
import Testing

/// `erp run --mode zmq` end to end: real processes, real sockets, HTTP workload, faults played for
/// real, judged by the same checkers as simulation.
@Suite(.serialized) struct ZeroMQScenarioRunTests {
    /// Runs the erp binary on a library scenario in zmq mode; returns its exit status and summary.
    /// It waits for the process on a thread of its own: blocking one of the two threads of the
    /// test run's shared pool for half a minute starved the other tests' calls past their deadlines.
    func run(_ scenario: String, duration: String) async throws -> (status: Int32, summary: RunSummary?, output: String, directory: String) {
        let out = scratchDirectory("zmq-run")
        let result = try await runErp(["run", "scenarios/\(scenario).yaml", "--mode", "zmq", "--duration", duration, "--out", out])
        let summary = FileManager.default.contents(atPath: out + "/summary.json").flatMap { try? JSONDecoder().decode(RunSummary.self, from: $0) }
        return (result.status, summary, result.output, out)
    }

    /// order-crash: the order service is SIGKILLed twice and respawned, inventory is partitioned
    /// from it, the link to payment loses and delays messages, payment is paused (SIGSTOP).
    @Test func orderCrashOverZeroMQHoldsEveryInvariant() async throws {
        let result = try await run("order-crash", duration: "4s")
        defer { try? FileManager.default.removeItem(atPath: result.directory) }
        let summary = try #require(result.summary, "no summary.json:\n\(result.output)")
        #expect(result.status == 0, "\(result.output)")
        #expect(summary.mode == "zmq")
        #expect(summary.traceHash == nil)
        #expect(summary.serviceStarts["order"] == 3, "two scripted crashes mean three starts: \(summary.serviceStarts)")
        #expect(summary.serviceStarts["inventory"] == 1)
        #expect(summary.orders.accepted > 0)
        #expect(summary.invariantsPass, "\(summary.violations)")
        #expect(summary.chaosMilliseconds == 4_000)
        // Per-call latency, merged from every process's histograms (incarnations included).
        #expect((summary.latency["rpc inventory.reserveStock"]?.count ?? 0) > 0, "\(summary.latency.keys.sorted())")
        #expect((summary.latency["rpc bus.append"]?.count ?? 0) > 0)
        let orderLog = String(decoding: FileManager.default.contents(atPath: result.directory + "/logs/order.log") ?? Data(), as: UTF8.self)
        #expect(orderLog.components(separatedBy: "order serving on").count - 1 == 3, "the order log should show three starts")
        let runnerLog = String(decoding: FileManager.default.contents(atPath: result.directory + "/runner.log") ?? Data(), as: UTF8.self)
        #expect(runnerLog.contains("pause payment") && runnerLog.contains("partition order <-> inventory"))
        // Each service's /metrics, scraped at the end: the bus's outcomes per consumer group and
        // the call paths' breakers (an operator could see neither: an on-call trial).
        let bus = String(decoding: FileManager.default.contents(atPath: result.directory + "/metrics/event-bus.prom") ?? Data(), as: UTF8.self)
        #expect(bus.contains(#"erp_bus_deliveries_acked_total{group="inventory"}"#) && bus.contains("# TYPE erp_bus_dead_letters_total counter"), "\(bus.prefix(2_000))")
        let order = String(decoding: FileManager.default.contents(atPath: result.directory + "/metrics/order.prom") ?? Data(), as: UTF8.self)
        #expect(order.contains(#"erp_breaker_state{path="order->payment"}"#) && order.contains(#"erp_call_retries_total{path="order->inventory"}"#), "\(order.prefix(3_000))")
        // Every service's Prometheus metrics, scraped at the end: per-method counts and latency.
        let inventory = String(decoding: FileManager.default.contents(atPath: result.directory + "/metrics/inventory.prom") ?? Data(), as: UTF8.self)
        #expect(inventory.contains(#"erp_rpc_served_total{method="inventory.reserveStock",outcome="ok"}"#), "\(inventory)")
        #expect(inventory.contains(#"erp_rpc_served_duration_ms{method="inventory.reserveStock",quantile="0.99"}"#))
        let gateway = String(decoding: FileManager.default.contents(atPath: result.directory + "/metrics/gateway.prom") ?? Data(), as: UTF8.self)
        #expect(gateway.contains(#"erp_http_requests_total{route="POST /orders""#) && gateway.contains("erp_rpc_calls_total"))
    }

    /// inventory-outage (#4 "once over ZeroMQ"): the breaker on order->inventory opens while
    /// inventory is isolated, fails orders fast, and closes after heal.
    @Test func inventoryOutageOverZeroMQOpensAndClosesTheBreaker() async throws {
        let result = try await run("inventory-outage", duration: "10s")
        defer { try? FileManager.default.removeItem(atPath: result.directory) }
        let summary = try #require(result.summary, "no summary.json:\n\(result.output)")
        #expect(result.status == 0, "\(result.output)")
        let path = try #require(summary.resilience["order->inventory"], "no figures for order->inventory: \(summary.resilience.keys.sorted())")
        #expect(path.breakerOpened >= 1, "\(path)")
        #expect(path.breakerClosed >= 1, "\(path)")
        #expect(path.breakerRejections > 0, "\(path)")
        #expect(path.breakerState == "closed")
        #expect((summary.orders.cancelReasons["inventory_unavailable"] ?? 0) > 0)
        #expect(summary.invariantsPass, "\(summary.violations)")
    }

    /// slow-payment (#4 "once over ZeroMQ"): swishpay answers after the deadline for a while
    /// (the provider fault reaches the swishpay process through its control method); calls time
    /// out and are asked again with the same key, and nobody is charged twice.
    @Test func slowPaymentOverZeroMQNeverChargesTwice() async throws {
        let result = try await run("slow-payment", duration: "8s")
        defer { try? FileManager.default.removeItem(atPath: result.directory) }
        let summary = try #require(result.summary, "no summary.json:\n\(result.output)")
        #expect(result.status == 0, "\(result.output)")
        #expect(summary.invariants["confirmed-order-has-exactly-one-captured-payment"] == .pass, "\(summary.violations)")
        #expect(summary.invariants["cancelled-order-has-no-net-charge"] == .pass, "\(summary.violations)")
        let toProvider = try #require(summary.resilience["payment->swishpay"], "\(summary.resilience.keys.sorted())")
        #expect(toProvider.failedCalls > 0, "the slow provider should have timed calls out: \(toProvider)")
        #expect(summary.faults.contains { $0.contains("swishpay answers in 1.5s") }, "\(summary.faults)")
    }

    /// An isolated gateway is cut from the workload too, as in simulation, where the client is a
    /// node like any other: orders sent while the API gateway is isolated hear nothing until the
    /// client's timeout (5 s), in both modes, and the devices' messages to an isolated IoT gateway
    /// are lost (runner.log counts both). Only the runner's control calls keep their way.
    @Test func anIsolatedGatewayIsCutFromTheWorkloadAsInSimulation() async throws {
        let folder = scratchDirectory("zmq-isolated-gateway")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let scenario = folder + "/gateways-isolated.yaml"
        try """
        name: gateways-isolated
        seed: 5
        duration: 6s
        heal: 6s
        workload:
          orders: {rate: 10}
          devices: {heartbeat: 500ms}
        faults:
          - {at: 1500ms, isolate: gateway, for: 2500ms}
          - {at: 1500ms, isolate: iot-gateway, for: 2500ms}
        """.write(toFile: scenario, atomically: true, encoding: .utf8)
        for mode in ["simulation", "zmq"] {
            let out = folder + "/" + mode
            let result = try await runErp(["run", scenario, "--mode", mode, "--out", out])
            let summary = try #require(FileManager.default.contents(atPath: out + "/summary.json").flatMap { try? JSONDecoder().decode(RunSummary.self, from: $0) },
                                       "\(mode): no summary.json:\n\(result.output)")
            #expect(result.status == 0, "\(mode): \(result.output)")
            #expect(summary.invariantsPass, "\(mode): \(summary.violations)")
            let before = try #require(summary.latency["orderPlacement (before faults)"], "\(mode): \(summary.latency.keys.sorted())")
            let under = try #require(summary.latency["orderPlacement (under faults)"], "\(mode): \(summary.latency.keys.sorted())")
            // (One sent just before the cut may wait for it to end: its answer is on the way back.)
            #expect(before.p50 < 2_000, "\(mode): orders before the cut should be quick: \(before)")
            // Not cut, the HTTP requests still waited for the gateway's own calls to get through:
            // 3.1 s in zmq mode, under the bound (seen).
            #expect(under.p50 >= 4_500, "\(mode): orders sent while the gateway is isolated should wait for the client's timeout: \(under)")
            if mode == "zmq" {
                let runnerLog = String(decoding: FileManager.default.contents(atPath: out + "/runner.log") ?? Data(), as: UTF8.self)
                let line = try #require(runnerLog.split(separator: "\n").first { $0.contains("lost to isolations") }, "\(runnerLog)")
                let counts = line.split(separator: ":").last!.split(separator: ",").map { $0.split(separator: " ") }
                #expect(counts.map { String($0[0]) } == ["gateway", "iot-gateway"], "\(line)")
                #expect(counts.allSatisfy { (Int($0[1]) ?? 0) > 0 }, "\(line)")
            }
        }
    }
}
