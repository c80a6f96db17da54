import ERPReports
import Testing

@Suite struct MemoryFloorTests {
    /// A leak of 1 MiB a minute over ten samples raises the later floor well past 10 %.
    @Test func aSteadyLeakRaisesTheFloor() throws {
        let leaking = (0..<10).map { 20_000 + $0 * 1_024 }
        let floor = try #require(MemoryFloor(leaking))
        #expect(floor.earlier == 20_000)
        #expect(floor.later == 20_000 + 5 * 1_024)
        #expect(floor.growthPercent > 25)
    }

    /// The swings a soak saw (event-bus's private memory, MiB per minute) leave the floor where it
    /// was, though the last sample is 43 % above the first; a leak under swings still shows.
    @Test func swingsDoNotRaiseTheFloorButALeakUnderThemDoes() throws {
        let swinging = [14, 18, 16, 18, 14, 15, 19, 12, 20].map { $0 * 1_024 }
        let floor = try #require(MemoryFloor(swinging))
        #expect(floor.earlier == 14 * 1_024 && floor.later == 12 * 1_024)
        #expect(floor.growthPercent < 0)
        let leakingUnderSwings = swinging.enumerated().map { $0.element + $0.offset * 600 }
        #expect(try #require(MemoryFloor(leakingUnderSwings)).growthPercent > 10)
    }

    @Test func twoSamplesAreTheFirstAgainstTheLastAndOneIsNothing() throws {
        #expect(MemoryFloor([100, 111])?.growthPercent == 11)
        #expect(MemoryFloor([5]) == nil)
        #expect(MemoryFloor([0, 7])?.growthPercent == 0)
        // Odd counts share the middle sample.
        #expect(MemoryFloor([30, 10, 40]) == MemoryFloor([30, 10, 10, 40]))
    }
}
