import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

@Suite struct ResilienceScenarioTests {
    /// While inventory is away the breaker opens, orders that arrive then are cancelled at once
    /// (nothing was reserved), and after heal the breaker closes.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func inventoryOutageOpensAndClosesTheBreaker(seed: UInt64) async throws {
        let summary = try await run(try library("inventory-outage"), seed: seed)
        #expect(summary.invariantsPass, "\(summary.violations)")
        let path = try #require(summary.resilience["order->inventory"])
        #expect(path.breakerOpened >= 1)
        #expect(path.breakerRejections > 0)
        #expect(path.breakerState == "closed")
        #expect(path.breakerClosed >= 1)
        #expect(summary.orders.cancelReasons["inventory_unavailable", default: 0] > 0)
    }

    /// The provider answers after the deadline: charges are retried with the same key, and no
    /// customer is ever charged twice (the invariants read swishpay's ledger).
    @Test(arguments: [5, 6, 7] as [UInt64])
    func slowProviderNeverChargesTwice(seed: UInt64) async throws {
        let summary = try await run(try library("slow-payment"), seed: seed)
        #expect(summary.invariants["confirmed-order-has-exactly-one-captured-payment"] == .pass, "\(summary.violations)")
        #expect(summary.invariants["cancelled-order-has-no-net-charge"] == .pass)
        let payments = try #require(summary.resilience["order->payment"])
        #expect(payments.calls > summary.orders.accepted, "the slow window must make the saga ask again")
        #expect(payments.failedCalls > 0)
        // An order whose saga outlasts the call is answered pending just before the caller's
        // deadline (3 s, less the 100 ms margin), never after it, and the client polls for it.
        let creates = try #require(summary.latency["rpc order.createOrder"])
        #expect(creates.max >= 2_850 && creates.max < 2_950, "slowest createOrder answer: \(creates.max) ms")
        #expect((summary.latency["rpc order.getOrder"]?.count ?? 0) > 0, "no order was answered pending")
    }

    @Test func theGatewayShedsBurstsAndClientsComeBackLater() async throws {
        var s = Scenario(name: "rate-limited")
        s.duration = .seconds(5)
        s.heal = .seconds(20)
        s.workload.ratePerSecond = 40
        s.workload.attemptCountMax = 8
        s.resilience.gatewayRateLimit = .init(capacity: 10, refillRatePerSecond: 20)
        let summary = try await run(s)
        #expect(summary.rateLimited > 0)
        #expect(summary.invariantsPass, "\(summary.violations)")
        #expect(summary.orders.confirmed > 0)
    }
}

/// Breakers in a chain recover one reset after another. Found by `erp explore --swarm --mix`
/// (payment-declines seed 444): order→payment half-opened at 40.056 s, 28 ms before
/// payment→swishpay's reset ran out; its trial met payment's own open breaker, failed, and kept
/// order→payment open until 70 s, after the run was judged at 60 s (heal 40 s, the old floor of
/// one reset plus 10 s): 30 orders still pending. The floor is now two resets plus 10 s. The
/// same schedule opens the chain at seed 8 since the workload's plan has streams of its own (the
/// orders of seed 444 changed with them).
@Suite struct ChainedBreakerTests {
    static let schedule = """
        name: chained-breakers
        duration: 20s
        heal: 40s
        network: {latency: {min: 1ms, max: 4ms}, drop: 0.0, duplicate: 0.01, reorder: 0.0}
        workload:
          orders: {rate: 20.0, itemsPerOrder: {min: 1, max: 3}, quantity: {min: 1, max: 2}, timeout: 5s, attempts: 4}
        payment: {declineRate: 0.25, processingTime: 20ms}
        faults:
          - {at: 539ms, crash: iot-gateway, restartAfter: 1177ms}
          - {at: 6856ms, for: 4502ms, pause: swishpay}
          - {at: 7989ms, crash: order, restartAfter: 1721ms}
          - {at: 8481ms, powerCut: swishpay, restartAfter: 1606ms}
          - {at: 10428ms, crash: vm-service, restartAfter: 2950ms}
          - {at: 13971ms, for: 658ms, partition: [report, swishpay]}
        """

    @Test func aHealAtTheFloorOutlastsTwoBreakersInAChain() async throws {
        var scenario = try ScenarioLoader.parse(Self.schedule)
        #expect(scenario.healFloor == .seconds(70))
        let short = try await runInSimulation(scenario, seed: 8)
        #expect(!short.livenessPass, "the schedule no longer opens the chain: this test shows nothing")
        #expect(short.resilience["order->payment"]?.breakerState == "open")
        scenario.heal = scenario.healFloor
        let floor = try await runInSimulation(scenario, seed: 8)
        #expect(floor.invariantsPass, "\(floor.failedInvariants): \(floor.violations.prefix(3))")
    }
}
