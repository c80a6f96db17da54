import ERPCore
import ERPScenario
import Testing

@Suite struct ScenarioScalingTests {
    @Test func scalingTheChaosPhaseScalesTheScheduleTheHealAndTheExpectations() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 20s
            heal: 30s
            faults:
              - {at: 4s, crash: order, restartAfter: 2s}
              - {at: 10s, partition: [order, inventory], for: 6s}
              - {at: 12s, crash: payment}
            expect: {minConfirmed: 101, minCancelled: 10}
            """)
        let scaled = s.scaled(toChaos: .seconds(5))
        #expect(scaled.duration == .seconds(5))
        #expect(scaled.heal == .milliseconds(7_500))
        #expect(scaled.faults.map(\.at) == [.seconds(1), .milliseconds(2_500), .seconds(3)])
        #expect(scaled.faults.map(\.duration) == [nil, .milliseconds(1_500), nil])
        guard case .crash(let node, let restartAfter) = scaled.faults[0].kind else { Issue.record("not a crash"); return }
        #expect(node == "order" && restartAfter == .milliseconds(500))
        guard case .crash(_, nil) = scaled.faults[2].kind else { Issue.record("a restart-at-heal crash gained a restart time"); return }
        #expect(scaled.expect.minConfirmed == 25 && scaled.expect.minCancelled == 2)
        #expect(scaled.workload.ratePerSecond == s.workload.ratePerSecond)
        #expect(s.scaled(toChaos: .seconds(20)).faults.map(\.at) == s.faults.map(\.at))
    }
}
