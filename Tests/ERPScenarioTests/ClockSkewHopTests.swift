import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Testing

/// Event hops are timed from the producer's timestamp to the consumer's commit, each written on its
/// own service's clock. Under a clock-skew fault the hop measured the skew: a report reader's
/// trial saw 5 ms hops reported as 0 ms (negative ones clamped) and 7 ms ones as 806 ms in
/// skewed-clocks, a green run. The checker now takes the skews the run set back out.
@Suite struct ClockSkewHopTests {
    @Test func readingsAreTakenBackToTrueTime() {
        var skews = ClockSkews()
        #expect(skews.isEmpty)
        skews.record(.init(node: "order", atMilliseconds: 10_000, skewMilliseconds: 800))
        skews.record(.init(node: "order", atMilliseconds: 18_000, skewMilliseconds: 0))
        skews.record(.init(node: "inventory", atMilliseconds: 6_000, skewMilliseconds: -1_500))
        #expect(!skews.isEmpty && skews.skewed("order") && !skews.skewed("payment"))
        #expect(skews.trueTime(9_000, on: "order") == 9_000)            // before the skew
        #expect(skews.trueTime(12_000, on: "order") == 11_200)          // 800 ms ahead
        #expect(skews.trueTime(19_000, on: "order") == 19_000)          // after it ended
        #expect(skews.trueTime(7_000, on: "inventory") == 8_500)        // 1.5 s behind
        // Set back, the clock reads 4.5–6 s twice: such a reading is taken as the later instant.
        #expect(skews.trueTime(5_000, on: "inventory") == 6_500)
        #expect(skews.trueTime(4_000, on: "inventory") == 4_000)
        #expect(skews.trueTime(7_000, on: "payment") == 7_000)
        #expect(skews.trueTimes(5_000, on: "inventory") == [6_500, 5_000])
        #expect(skews.trueTimes(18_500, on: "order") == [18_500, 17_700])
        #expect(skews.trueTimes(12_000, on: "order") == [11_200])
        // A hop is the nearest pair in order: an event payment stamped at 17.69 s and order applied
        // just before its clock was set back (its reading 18.5 s) took 10 ms, not 810.
        #expect(skews.elapsed(from: 17_690, on: "payment", to: 18_500, on: "order") == 10)
        #expect(skews.elapsed(from: 4_990, on: "payment", to: 5_000, on: "inventory") == 10)
        #expect(skews.elapsed(from: 12_000, on: "order", to: 9_710, on: "inventory") == 10)   // 11.2 s and 11.21 s, true time
        #expect(ClockSkews().elapsed(from: 100, on: "a", to: 90, on: "b") == -10)
    }

    @Test func aSkewedConsumerDoesNotTimeItsHopsOnItsClock() async throws {
        let scenario = try ScenarioLoader.parse("""
            name: order-clock-ahead
            seed: 3
            duration: 6s
            heal: 8s
            network:
              latency: {min: 1ms, max: 4ms}
            workload:
              orders: {rate: 10}
            faults:
              - {at: 1s, clockSkew: {service: order, by: 800ms}, for: 4s}
            """)
        let summary = try await run(scenario)
        #expect(summary.invariantsPass, "\(summary.violations)")
        // Payment's events reach order within milliseconds; on order's clock they took 800 ms more.
        let hop = try #require(summary.latency["hop payment.processed → order"])
        #expect(hop.count > 20)
        #expect(hop.p50 < 100, "p50 \(hop.p50) ms: the skew counted as delay")
        // And order's own events, produced on its clock, are not taken for instant (0 ms).
        let confirmed = try #require(summary.latency["hop order.confirmed → inventory"])
        #expect(confirmed.p50 > 0, "p50 \(confirmed.p50) ms")
    }
}
