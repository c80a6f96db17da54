import ERPCore
import ERPScenario
import ERPZeroMQ
import Testing
@testable import ERPZeroMQBackend

/// What each process's filter must be for the faults in force: the zmq harness's translation of
/// the scenario's network faults into sender-side rules.
@Suite struct FaultPlanTests {
    func plan(_ network: String = "") throws -> FaultPlan {
        try FaultPlan(scenario: ScenarioLoader.parse("name: t\n" + network + "payment: {declineRate: 0.1, processingTime: 20ms}\n"),
                      exempt: ["runner"])
    }

    @Test func aPartitionCutsBothSidesAndNobodyElse() throws {
        let plan = try plan()
        plan.update { $0.set(\.partitions, Pair("order", "inventory"), true) }
        #expect(plan.command(for: "order").rules.fault(to: "inventory") == .partition)
        #expect(plan.command(for: "inventory").rules.fault(to: "order") == .partition)
        // Everyone else keeps the scenario's base network (1–4 ms by default), nothing more.
        let base = plan.command(for: "payment").rules
        #expect(base.links.isEmpty && !base.fallback.blocked && base.fallback.latencyMax == .milliseconds(4))
        #expect(plan.command(for: "order").rules.fault(to: "payment") == base.fallback)
        plan.update { $0.set(\.partitions, Pair("order", "inventory"), false) }
        #expect(plan.command(for: "order").rules.links.isEmpty)
    }

    @Test func aOneWayPartitionCutsOnlyTheSender() throws {
        let plan = try plan()
        plan.update { $0.set(\.oneWay, Pair("payment", "order"), true) }
        #expect(plan.command(for: "payment").rules.fault(to: "order") == .partition)
        #expect(!plan.command(for: "order").rules.fault(to: "payment").blocked)
    }

    @Test func anIsolatedNodeIsCutFromEveryoneButTheRunner() throws {
        let plan = try plan()
        plan.update { state in
            state.links.append((Pair("inventory", "order"), LinkBehaviour(latencyMin: .milliseconds(1), latencyMax: .milliseconds(2))))
            state.set(\.isolated, "inventory", true)
        }
        let own = plan.command(for: "inventory").rules
        #expect(own.fault(to: "order") == .partition, "isolation must override the link fault")
        #expect(own.fault(to: "event-bus") == .partition)
        #expect(own.fault(to: "runner") == .none, "the runner must keep control of an isolated node")
        #expect(plan.command(for: "order").rules.fault(to: "inventory") == .partition)
    }

    @Test func aPartitionOverridesALinkFaultWhicheverCameFirst() throws {
        let plan = try plan()
        plan.update { state in
            state.set(\.partitions, Pair("order", "payment"), true)
            state.links.append((Pair("order", "payment"), LinkBehaviour(latencyMin: .milliseconds(5), latencyMax: .milliseconds(50), dropProbability: 0.3)))
        }
        #expect(plan.command(for: "order").rules.fault(to: "payment") == .partition)
    }

    @Test func theBaseNetworkAppliesEverywhereAndHealsToLatencyOnly() throws {
        let plan = try plan("network: {latency: {min: 1ms, max: 8ms}, drop: 0.03}\n")
        let chaos = plan.command(for: "order").rules.fallback
        #expect(chaos.dropProbability == 0.03 && chaos.latencyMax == .milliseconds(8))
        plan.update { $0.healed = true }
        let healed = plan.command(for: "order").rules.fallback
        #expect(healed.dropProbability == 0 && healed.latencyMax == .milliseconds(8))
    }

    @Test func skewAndProviderFaultsGoOnlyWhereTheyBelong() throws {
        let plan = try plan()
        plan.update { state in
            state.skews["payment"] = .seconds(3)
            state.processingTime = .seconds(2)
            state.declineRate = 0.5
        }
        #expect(plan.command(for: "payment").clockSkew == .seconds(3))
        #expect(plan.command(for: "order").clockSkew == .zero)
        let provider = plan.command(for: "swishpay")
        #expect(provider.providerProcessingTime == .seconds(2) && provider.providerDeclineRate == 0.5)
        #expect(plan.command(for: "payment").providerDeclineRate == nil)
        plan.update { $0.declineRate = nil; $0.processingTime = nil }
        #expect(plan.command(for: "swishpay").providerDeclineRate == 0.1, "after the fault the provider returns to the scenario's rate")
        #expect(plan.command(for: "swishpay").providerProcessingTime == .milliseconds(20))
    }
}
