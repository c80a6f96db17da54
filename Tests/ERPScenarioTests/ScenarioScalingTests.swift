import ERPCore
import ERPScenario
import Testing

@Suite struct ScenarioScalingTests {
    @Test func scalingTheChaosPhaseScalesTheScheduleTheHealAndTheExpectations() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 20s
            heal: 30s
            resilience:
              circuitBreaker: {resetTimeout: 1s}
            faults:
              - {at: 4s, crash: order, restartAfter: 2s}
              - {at: 10s, partition: [order, inventory], for: 6s}
              - {at: 12s, crash: payment}
            expect: {minConfirmed: 101, minCancelled: 10}
            """)
        let scaled = s.scaled(toChaos: .seconds(5), keepingHealFloor: false)
        #expect(scaled.duration == .seconds(5))
        #expect(scaled.heal == .milliseconds(7_500))
        #expect(s.scaled(toChaos: .seconds(5)).heal == .seconds(12), "the floor: twice the breaker's reset, and 10 s")
        #expect(scaled.faults.map(\.at) == [.seconds(1), .milliseconds(2_500), .seconds(3)])
        #expect(scaled.faults.map(\.duration) == [nil, .milliseconds(1_500), nil])
        guard case .crash(let node, let restartAfter) = scaled.faults[0].kind else { Issue.record("not a crash"); return }
        #expect(node == "order" && restartAfter == .milliseconds(500))
        guard case .crash(_, nil) = scaled.faults[2].kind else { Issue.record("a restart-at-heal crash gained a restart time"); return }
        #expect(scaled.expect.minConfirmed == 25 && scaled.expect.minCancelled == 2)
        #expect(scaled.workload.ratePerSecond == s.workload.ratePerSecond)
        #expect(s.scaled(toChaos: .seconds(20)).faults.map(\.at) == s.faults.map(\.at))
    }

    /// Found by a scenario author (2026-12-06): `expect: {minConfirmed: 9223372036854775807}`
    /// with `--duration` twice the scenario's stopped the run with SIGILL (a Double past Int.max
    /// converted); so would a restart delay far past the chaos phase. Stretched values saturate.
    @Test func stretchingHugeValuesSaturates() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 100ms
            heal: 30s
            faults:
              - {at: 50ms, crash: order, restartAfter: 23h}
            expect: {minConfirmed: 9223372036854775807, minCancelled: 5000000000000000000}
            """)
        let stretched = s.scaled(toChaos: .seconds(86_400))
        #expect(stretched.expect.minConfirmed == Int.max && stretched.expect.minCancelled == Int.max)
        guard case .crash(_, let restartAfter?) = stretched.faults[0].kind else { Issue.record("not a crash with a restart"); return }
        #expect(restartAfter == .nanoseconds(Int64.max))
    }

    /// payment-blackout's 60 s heal scaled with its 160 s chaos phase down to 2 s was 0.75 s, and
    /// half of its seeds failed for that alone: the heal stops at the floor (twice the breaker's
    /// reset, plus 10 s here), and never grows past the scenario's own. Real processes keep the scaled
    /// heal: their heal phase waits for the flows itself.
    @Test func scalingStopsTheHealPhaseAtItsFloor() throws {
        func scenario(heal: String) throws -> Scenario {
            try ScenarioLoader.parse("""
                name: t
                duration: 160s
                heal: \(heal)
                resilience:
                  circuitBreaker: {resetTimeout: 2s}
                """)
        }
        let s = try scenario(heal: "60s")
        #expect(s.healFloor == .seconds(14))
        #expect(s.scaled(toChaos: .seconds(2)).heal == .seconds(14))
        #expect(s.scaled(toChaos: .seconds(2), keepingHealFloor: false).heal == .milliseconds(750))
        #expect(s.scaled(toChaos: .seconds(80)).heal == .seconds(30), "above the floor it scales")
        #expect(try scenario(heal: "5s").scaled(toChaos: .seconds(2)).heal == .seconds(5), "no longer than the scenario's own")
    }

    /// A power cut lands up to 100 ms after its `at`; scaling a schedule down must not bring its
    /// restart before that (the loader refuses less than 100 ms for the same reason).
    @Test func scalingKeepsAPowerCutsRestartAtLeastOneHundredMilliseconds() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 40s
            faults:
              - {at: 10s, powerCut: order, restartAfter: 200ms}
              - {at: 20s, powerCut: payment, restartAfter: 4s}
              - {at: 30s, powerLoss: order, restartAfter: 200ms}
            """)
        let scaled = s.scaled(toChaos: .seconds(4))
        guard case .powerCut(_, let first?) = scaled.faults[0].kind, case .powerCut(_, let second?) = scaled.faults[1].kind,
              case .powerLoss(_, let third?) = scaled.faults[2].kind else { Issue.record("kinds changed"); return }
        #expect(first == .milliseconds(100))
        #expect(second == .milliseconds(400))
        #expect(third == .milliseconds(20), "a plain power loss has no such floor")
    }
}
