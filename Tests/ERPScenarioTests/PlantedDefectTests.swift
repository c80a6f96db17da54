import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// A checker that never fails proves nothing: each planted defect must be caught by the invariant
/// that guards against it, and the same scenario without the defect must pass.
@Suite struct PlantedDefectTests {
    func scenario(_ defect: String?, declineRate: Double = 0, duplicate: Double = 0) -> Scenario {
        var s = Scenario(name: "defect-\(defect ?? "none")")
        s.seed = 5
        s.duration = .seconds(4)
        s.heal = .seconds(10)
        s.workload.ratePerSecond = 20
        s.payment.declineRate = declineRate
        s.network.link.duplicateProbability = duplicate
        if let defect { _ = s.defects.enable(defect) }
        return s
    }

    @Test(arguments: [
        ("skip-stock-release", 0.5, 0.0, "confirmed-order-stock-taken-cancelled-order-stock-released"),
        ("confirm-declined-payments", 0.5, 0.0, "confirmed-order-has-exactly-one-captured-payment"),
        ("ignore-payment-idempotency", 0.0, 0.3, "confirmed-order-has-exactly-one-captured-payment"),
        ("skip-inbox", 0.0, 0.3, "one-confirmation-per-confirmed-order"),
        // The catalogue counts a redelivered StockUpdated twice.
        ("skip-inbox", 0.0, 0.3, "product-availability-follows-stock"),
        // The report counts a redelivered OrderCreated or StockUpdated twice.
        ("skip-inbox", 0.0, 0.3, "report-converges"),
        // A notification sent twice for one event, whatever the inbox holds.
        ("skip-inbox", 0.0, 0.3, "every-event-applied-once"),
    ])
    func eachDefectIsCaught(defect: String, declineRate: Double, duplicate: Double, invariant: String) async throws {
        let control = try await run(scenario(nil, declineRate: declineRate, duplicate: duplicate))
        #expect(control.invariantsPass, "control run failed: \(control.violations)")
        #expect(control.defectsActed == nil)
        let broken = try await run(scenario(defect, declineRate: declineRate, duplicate: duplicate))
        #expect(broken.invariants[invariant] == .fail, "\(defect) was not caught by \(invariant)")
        // Each planted defect says how often it acted (its code on the wrong path).
        #expect((broken.defectsActed?[defect] ?? 0) > 0, "\(defect): \(String(describing: broken.defectsActed))")
        #expect(broken.violations.contains { $0.invariant == invariant })
    }

    /// Runs `scenario` as is (every invariant must hold), then with `defect` planted (`invariant`
    /// must fail); returns the broken run.
    func expectCaught(_ scenario: Scenario, defect: String, by invariant: String) async throws -> RunSummary {
        var s = scenario
        let control = try await run(s)
        #expect(control.invariants[invariant] == .pass, "control run failed: \(control.violations)")
        #expect(control.invariantsPass, "\(control.violations)")
        _ = s.defects.enable(defect)
        let broken = try await run(s)
        #expect(broken.invariants[invariant] == .fail, "\(defect) was not caught by \(invariant): \(broken.violations)")
        #expect((broken.defectsActed?[defect] ?? 0) > 0, "\(defect): \(String(describing: broken.defectsActed))")
        return broken
    }

    /// The shop applying device reports without comparing revisions: the repeated or late reports
    /// it applies show in its device history, whatever the final state looks like.
    @Test func aShopThatIgnoresRevisionsIsCaught() async throws {
        var s = try library("iot-partition").scaled(toChaos: .seconds(6))
        s.heal = .seconds(5)
        let broken = try await expectCaught(s, defect: "apply-stale-device-status", by: "device-status-converges")
        #expect(broken.violations.contains { $0.invariant == "device-status-converges" && $0.example.contains("was applied") })
    }

    /// A report that loses its disk and does not rebuild from the log misses everything before.
    @Test func aReportThatDoesNotRebuildIsCaught() async throws {
        var s = try library("report-rebuild").scaled(toChaos: .seconds(8))
        s.heal = .seconds(6)
        _ = try await expectCaught(s, defect: "skip-report-rebuild", by: "report-converges")
    }

    /// An order priced at a campaign price but charged the list price is caught: the charge is not
    /// the priced total.
    @Test func aCampaignPriceNotChargedIsCaught() async throws {
        var s = try library("campaign-outage").scaled(toChaos: .seconds(8))
        s.heal = .seconds(6)
        let broken = try await expectCaught(s, defect: "charge-list-price", by: "order-charged-its-priced-total")
        #expect(broken.violations.contains { $0.invariant == "order-charged-its-priced-total" && $0.example.contains("was charged") })
    }

    /// A consumer without its inbox applies a redelivered restock twice: inventory's `restocked`
    /// then exceeds what the devices delivered.
    @Test func aRestockAppliedTwiceIsCaught() async throws {
        var s = try library("restock-race").scaled(toChaos: .seconds(6))
        s.heal = .seconds(6)
        s.network.link.duplicateProbability = 0.3
        _ = try await expectCaught(s, defect: "skip-inbox", by: "every-restock-applied-once")
    }

    /// A defect the run gives no occasion acts 0 times, and the run says its verdict proves
    /// nothing about it (a CI job that plants a defect took such a green run for proof).
    @Test func aDefectWithNoOccasionSaysSo() async throws {
        let quiet = try await run(scenario("sell-twice"))
        #expect(quiet.invariantsPass && quiet.defectsActed == ["sell-twice": 0], "\(String(describing: quiet.defectsActed))")
        #expect(quiet.humanSummary.contains("planted defects: sell-twice (acted 0×)"), "\(quiet.humanSummary)")
        #expect(quiet.humanSummary.contains("note: sell-twice never acted"))
    }
}
