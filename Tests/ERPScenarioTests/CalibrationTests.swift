import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// The calibrated latency model: distributions given by quantiles, the `network:` block that
/// carries them (links and service times), the simulator honouring it, the fit from measured
/// histograms, and `erp calibrate` end to end over ZeroMQ.
@Suite(.serialized) struct CalibrationTests {
    @Test func aUniformDistributionDrawsAsTheSimulatorAlwaysDid() {
        let uniform = LatencyDistribution.uniform(.milliseconds(1), .milliseconds(4))
        for u in [0.0, 0.1, 0.5, 0.999] {
            #expect(uniform.sample(u) == 1_000_000 + Int64(u * Double(3_000_000)))
        }
        #expect(uniform.isUniform && uniform.description == "1ms..4ms")
    }

    @Test func quantilesShapeTheDraw() throws {
        let shaped = try #require(LatencyDistribution(min: .microseconds(100), points: [(0.5, .microseconds(200)), (0.99, .milliseconds(2))],
                                                      max: .milliseconds(50)))
        #expect(shaped.sample(0) == 100_000)
        #expect(shaped.sample(0.25) == 150_000)
        #expect(shaped.sample(0.5) == 200_000)
        #expect(shaped.sample(0.995) == 26_000_000)
        // Decreasing points, or a point outside (0, 1), are refused.
        #expect(LatencyDistribution(min: .milliseconds(2), points: [(0.5, .milliseconds(1))], max: .milliseconds(3)) == nil)
        #expect(LatencyDistribution(min: .zero, points: [(0.9, .milliseconds(1)), (0.5, .milliseconds(2))], max: .milliseconds(3)) == nil)
        #expect(LatencyDistribution(min: .zero, points: [], max: .milliseconds(3))?.isUniform == true)
    }

    static let calibratedYAML = """
        name: calibrated
        duration: 2s
        heal: 4s
        network:
          latency: {min: 100us, p50: 200us, p90: 400us, p99: 2ms, p999: 5ms, max: 9ms}
          drop: 0
          links:
            - {from: order, to: payment, latency: {min: 30ms, max: 30ms}}
          serviceTime:
            inventory.reserveStock: {min: 40ms, p50: 50ms, max: 60ms}
        workload:
          orders: {rate: 10}
        """

    @Test func theNetworkBlockRoundTrips() throws {
        let s = try ScenarioLoader.parse(Self.calibratedYAML, file: "calibrated.yaml")
        #expect(s.network.link.latency.innerPoints.map(\.name) == ["p50", "p90", "p99", "p999"])
        #expect(s.network.links.count == 1 && s.network.links[0].from == .order && s.network.links[0].to == .payment)
        #expect(s.network.serviceTimes.map(\.method) == ["inventory.reserveStock"])
        #expect(s.network.serviceTimes[0].time.sample(0.5) == 50_000_000)
        let written = ScenarioWriter.yaml(s)
        let reread = try ScenarioLoader.parse(written, file: "written.yaml")
        #expect(ScenarioWriter.yaml(reread) == written)
        #expect(reread.network.link.latency == s.network.link.latency && reread.network.links == s.network.links)
        #expect(reread.network.serviceTimes.map(\.time) == s.network.serviceTimes.map(\.time))
    }

    @Test(arguments: [
        ("network: {latency: {min: 2ms, p50: 1ms, max: 3ms}}", "network.latency: min, p50, max must each be at least the one before"),
        ("network: {latency: {min: 1ms, p75: 2ms, max: 3ms}}", "unknown field 'p75'"),
        ("network: {links: [{from: order, to: nowhere}]}", "unknown service 'nowhere'"),
        ("network: {serviceTime: {order.createOrder: {min: 1ms}}}", "missing field 'max'"),
    ])
    func badNetworkBlocksNameTheirFault(yaml: String, message: String) {
        #expect { try ScenarioLoader.parse("name: x\n" + yaml, file: "x.yaml") } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func theSimulatorHonoursLinksAndServiceTimes() async throws {
        var s = try ScenarioLoader.parse(Self.calibratedYAML, file: "calibrated.yaml")
        s.fixturesPath = packageRoot + "/fixtures/retail.json"
        let calibrated = try await runInSimulation(s)
        s.network = Scenario.NetworkSettings()
        let plain = try await runInSimulation(s)
        let reserve = try #require(calibrated.latency["rpc inventory.reserveStock"])
        let pay = try #require(calibrated.latency["rpc payment.processPayment"])
        // A 50 ms (40–60) service time on top of a sub-millisecond network; 2 × 30 ms on order → payment
        // (both ways: the reply's link, payment → order, keeps the default).
        #expect(reserve.p50 >= 45 && reserve.p50 < 62, "\(reserve)")
        #expect(pay.p50 >= 30, "\(pay)")
        #expect(try #require(plain.latency["rpc inventory.reserveStock"]).p50 < 20)
        #expect(calibrated.invariantsPass)
    }

    @Test func theFitSeparatesTheWireFromTheWork() throws {
        func recorder(_ values: [Duration]) -> LatencyRecorder {
            var r = LatencyRecorder()
            for v in values { r.record(v) }
            return r
        }
        // order calls inventory.reserveStock 100 times: round trips 3 ms, inventory's handler took
        // 1 ms of which 0.6 ms its own (the rest a call it made).
        var order = NodeLatency(node: "order")
        order.calls["inventory.reserveStock"] = recorder(Array(repeating: .milliseconds(3), count: 100))
        order.calls["_control.report"] = recorder([.seconds(1)])
        var inventory = NodeLatency(node: "inventory")
        inventory.served["inventory.reserveStock"] = recorder(Array(repeating: .milliseconds(1), count: 100))
        inventory.own["inventory.reserveStock"] = recorder(Array(repeating: .microseconds(600), count: 100))
        let fit = try Calibration.fit([inventory, order], base: Scenario.NetworkSettings())
        #expect(fit.links.count == 1 && fit.links[0].from == .inventory && fit.links[0].to == .order && fit.links[0].calls == 100)
        #expect(fit.network.links.map { "\($0.from)>\($0.to)" } == ["inventory>order", "order>inventory"], "both directions")
        let oneWay = fit.links[0].latency
        #expect(abs(oneWay.sample(0.5) - 1_000_000) < 10_000, "\(oneWay)")
        #expect(fit.network.link.latency == oneWay, "the only link measured is the default")
        #expect(fit.network.serviceTimes.map(\.method) == ["inventory.reserveStock"])
        #expect(abs(fit.network.serviceTimes[0].time.sample(0.5) - 600_000) < 10_000)
        #expect(throws: Calibration.FitError.self) { try Calibration.fit([NodeLatency(node: "order")], base: Scenario.NetworkSettings()) }
        // A pair with a handful of calls gets no link of its own: it keeps the default.
        order.calls["inventory.reserveStock"] = recorder(Array(repeating: .milliseconds(3), count: Calibration.minimumCalls - 1))
        let sparse = try Calibration.fit([inventory, order], base: Scenario.NetworkSettings())
        #expect(sparse.links.isEmpty && sparse.network.links.isEmpty && sparse.network.link.latency.sample(0.5) > 900_000)
    }

    /// Over ZeroMQ for real: the fitted file loads, names the links the saga uses and the methods'
    /// own times (swishpay's 20 ms processing is a sleep, not work: its own time is far below it),
    /// and the fidelity table compares the flows.
    @Test func calibrateEndToEnd() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-calibrate-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["calibrate", packageRoot + "/scenarios/happy-path.yaml", "--duration", "3s", "--out", out])
        #expect(result.status == 0, "\(result.output)")
        let calibrated = try ScenarioLoader.load(path: out + "/calibrated.yaml")
        let links = calibrated.network.links.map { "\($0.from)>\($0.to)" }
        for link in ["order>inventory", "order>payment", "payment>swishpay", "order>event-bus"] { #expect(links.contains(link), "\(links)") }
        // A method's own time is what it served less its waits: swishpay's 20 ms processing sleep,
        // and for processPayment the call to swishpay. Each served request took at least 20 ms
        // longer than its own time, so the median round trip of the calls to it (the real run's
        // `rpc METHOD`) is at least 20 ms above the median own time, however slow the machine is
        // (an absolute bound, own time under 10 ms, failed once when the whole suite loaded it).
        let real = try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/real/summary.json")))
        let own = Dictionary(uniqueKeysWithValues: calibrated.network.serviceTimes.map { ($0.method, $0.time) })
        for method in ["swishpay.charge", "payment.processPayment"] {
            let ownMs = Double(try #require(own[method]).sample(0.5)) / 1_000_000
            let roundTripMs = try #require(real.latency["rpc " + method]).p50
            #expect(ownMs + 10 < roundTripMs, "\(method): own time \(ownMs) ms should exclude the 20 ms it waited; its calls took \(roundTripMs) ms")
        }
        let rows = try JSONDecoder().decode([Calibration.FidelityRow].self, from: Data(contentsOf: URL(fileURLWithPath: out + "/fidelity.json")))
        let placement = try #require(rows.first { $0.name == "orderPlacement" })
        #expect(placement.real.count > 0 && placement.simulated.count > 0 && placement.p50Ratio > 0 && placement.p50Ratio.isFinite)
        #expect(rows.contains { $0.name == "rpc payment.processPayment" })
        #expect(result.output.contains("| orderPlacement |"))
    }
}
