import ERPCore
import ERPScenario
import ERPSimulation
import ERPZeroMQ
import Testing
@testable import ERPProduction

/// What each process's filter must be for the faults in force: the zmq runner's translation of
/// the simulator's network faults into sender-side rules.
@Suite struct FaultPlanTests {
    func plan(_ network: String = "") throws -> FaultPlan {
        try FaultPlan(scenario: ScenarioLoader.parse("name: t\n" + network + "payment: {declineRate: 0.1, processingTime: 20ms}\n"))
    }

    @Test func aPartitionCutsBothSidesAndNobodyElse() throws {
        let plan = try plan()
        plan.active = [0: .partition("order", "inventory")]
        #expect(plan.command(for: "order").rules.fault(to: "inventory") == .partition)
        #expect(plan.command(for: "inventory").rules.fault(to: "order") == .partition)
        // Everyone else keeps the scenario's base network (1–4 ms by default), nothing more.
        let base = plan.command(for: "payment").rules
        #expect(base.links.isEmpty && !base.fallback.blocked && base.fallback.delayMax == .milliseconds(4))
        #expect(plan.command(for: "order").rules.fault(to: "payment") == base.fallback)
    }

    @Test func aOneWayPartitionCutsOnlyTheSender() throws {
        let plan = try plan()
        plan.active = [0: .partitionOneWay(from: "payment", to: "order")]
        #expect(plan.command(for: "payment").rules.fault(to: "order") == .partition)
        #expect(!plan.command(for: "order").rules.fault(to: "payment").blocked)
    }

    @Test func anIsolatedNodeIsCutFromEveryoneButTheRunner() throws {
        let plan = try plan()
        plan.active = [0: .link(from: "inventory", to: "order", LinkSettings(latencyMin: .milliseconds(1), latencyMax: .milliseconds(2))),
                       1: .isolate("inventory")]
        let own = plan.command(for: "inventory").rules
        #expect(own.fault(to: "order") == .partition, "isolation must override the link fault")
        #expect(own.fault(to: "event-bus") == .partition)
        #expect(own.fault(to: "runner") == .none, "the runner must keep control of an isolated node")
        #expect(plan.command(for: "order").rules.fault(to: "inventory") == .partition)
    }

    @Test func theBaseNetworkAppliesEverywhereAndHealsToLatencyOnly() throws {
        let plan = try plan("network: {latency: {min: 1ms, max: 8ms}, drop: 0.03}\n")
        let chaos = plan.command(for: "order").rules.fallback
        #expect(chaos.dropProbability == 0.03 && chaos.delayMax == .milliseconds(8))
        plan.healed = true
        let healed = plan.command(for: "order").rules.fallback
        #expect(healed.dropProbability == 0 && healed.delayMax == .milliseconds(8))
    }

    @Test func skewAndProviderFaultsGoOnlyWhereTheyBelong() throws {
        let plan = try plan()
        plan.active = [0: .clockSkew("payment", .seconds(3)), 1: .providerDelay(.seconds(2)), 2: .providerDeclineRate(0.5)]
        #expect(plan.command(for: "payment").clockSkew == .seconds(3))
        #expect(plan.command(for: "order").clockSkew == .zero)
        let provider = plan.command(for: "swishpay")
        #expect(provider.providerProcessingTime == .seconds(2) && provider.providerDeclineRate == 0.5)
        #expect(plan.command(for: "payment").providerDeclineRate == nil)
        plan.active = [:]
        #expect(plan.command(for: "swishpay").providerDeclineRate == 0.1, "after the fault the provider returns to the scenario's rate")
    }
}
