import ERPReports
import Testing

@Suite struct SampleFloorTests {
    /// A leak of 1 MiB a minute over ten samples raises the later floor well past 10 %.
    @Test func aSteadyLeakRaisesTheFloor() throws {
        let leaking = (0..<10).map { 20_000 + $0 * 1_024 }
        let floor = try #require(SampleFloor(leaking))
        #expect(floor.earlier == 20_000)
        #expect(floor.later == 20_000 + 5 * 1_024)
        #expect(floor.growthPercent > 25)
    }

    /// The swings a soak saw (event-bus's private memory, MiB per minute) leave the floor where it
    /// was, though the last sample is 43 % above the first; a leak under swings still shows.
    @Test func swingsDoNotRaiseTheFloorButALeakUnderThemDoes() throws {
        let swinging = [14, 18, 16, 18, 14, 15, 19, 12, 20].map { $0 * 1_024 }
        let floor = try #require(SampleFloor(swinging))
        #expect(floor.earlier == 14 * 1_024 && floor.later == 12 * 1_024)
        #expect(floor.growthPercent < 0)
        let leakingUnderSwings = swinging.enumerated().map { $0.element + $0.offset * 600 }
        #expect(try #require(SampleFloor(leakingUnderSwings)).growthPercent > 10)
    }

    @Test func twoSamplesAreTheFirstAgainstTheLastAndOneIsNothing() throws {
        #expect(SampleFloor([100, 111])?.growthPercent == 11)
        #expect(SampleFloor([5]) == nil)
        #expect(SampleFloor([0, 7])?.growthPercent == 0)
        // Odd counts share the middle sample.
        #expect(SampleFloor([30, 10, 40]) == SampleFloor([30, 10, 10, 40]))
    }
}

extension SampleFloorTests {
    /// A gateway's own descriptors as a soak counted them (a connection closing between the two
    /// looks at /proc counts as its own for one sample): no rise; one more held each minute: a rise.
    @Test func descriptorSwingsAreNotARiseButALeakIs() throws {
        let swinging = [42, 42, 42, 45, 42, 42, 45, 42, 44]
        let floor = try #require(SampleFloor(swinging))
        #expect(floor.later - floor.earlier == 0)
        let leaking = swinging.enumerated().map { $0.element + $0.offset }
        let leak = try #require(SampleFloor(leaking))
        #expect(leak.later - leak.earlier >= 3)
    }

    /// A soak of 90 s in intervals of 10 s after a 30 s warm-up judges intervals 3 to 8: the last
    /// one ends with the load and is whole (it was always left out). Of 95 s, the tenth (90–100 s)
    /// is partial and left out.
    @Test func aSoakJudgesEveryWholeIntervalAfterTheWarmUp() {
        #expect((0..<12).filter { soakIntervalIsJudged($0, every: 10, warmUp: 30, load: 90) } == [3, 4, 5, 6, 7, 8])
        #expect((0..<12).filter { soakIntervalIsJudged($0, every: 10, warmUp: 30, load: 95) } == [3, 4, 5, 6, 7, 8])
        #expect((0..<12).filter { soakIntervalIsJudged($0, every: 10, warmUp: 30, load: 100) } == [3, 4, 5, 6, 7, 8, 9])
    }
}

/// When a heap's growth is a leak (`LeakRule`): by per cent and by bytes per order.
@Suite struct LeakRuleTests {
    /// The gateway's heap besides SQLite's (KiB) in a sixteen-minute soak at 250 orders/s,
    /// sampled each minute after a two-minute warm-up (docs/soak.md, 2026-12-07 night): its floor
    /// rose 22 %, which the per-cent rule alone called a leak, by 7.5 bytes per order.
    static let gatewayHeapKiB = [4750, 4217, 3470, 3955, 3735, 3667, 4105, 5424, 4235, 4613, 4817, 5280, 4882, 5025, 4331]
    /// 250 orders a second for the seven minutes between the halves' first samples.
    static let ordersBetweenHalves = 250.0 * 60 * Double(SampleFloor.laterHalfStart(count: gatewayHeapKiB.count))

    @Test func aSmallHeapMovedByTheWorkIsNotALeak() throws {
        #expect(SampleFloor.laterHalfStart(count: 15) == 7)
        let floor = try #require(SampleFloor(Self.gatewayHeapKiB))
        #expect(floor.growthPercent > 20)
        let perOrder = LeakRule.bytesPerOrder(floor, unitBytes: 1024, orders: Self.ordersBetweenHalves)
        #expect(perOrder > 7 && perOrder < 8)
        #expect(!LeakRule().isLeak(floor, unitBytes: 1024, orders: Self.ordersBetweenHalves))
        // By per cent alone (no bytes per order allowed), as the soak judged before.
        #expect(LeakRule(bytesPerOrderMax: 0).isLeak(floor, unitBytes: 1024, orders: Self.ordersBetweenHalves))
    }

    /// The same samples with 40 bytes kept for every order (250 a second, a minute apart): a leak.
    @Test func aLeakOfAShortStringPerOrderIsALeak() throws {
        let leaking = Self.gatewayHeapKiB.enumerated().map { $0.element + $0.offset * 250 * 60 * 40 / 1024 }
        let floor = try #require(SampleFloor(leaking))
        let perOrder = LeakRule.bytesPerOrder(floor, unitBytes: 1024, orders: Self.ordersBetweenHalves)
        #expect(perOrder > 40)
        #expect(LeakRule().isLeak(floor, unitBytes: 1024, orders: Self.ordersBetweenHalves))
    }

    /// The floors by thirds tell a step from a slope: the bus's heap (KiB) in a soak where a stall
    /// at two minutes left it 2 MiB higher, and then flat; and a steady leak.
    @Test func thirdsTellAStepFromASlope() throws {
        let step = [10_902, 12_887, 12_947, 12_945, 13_162, 13_128, 13_315, 13_209, 12_891]
        #expect(SampleFloor.thirds(step) == [10_902, 12_945, 12_891])
        let slope = (0..<9).map { 10_000 + $0 * 500 }
        #expect(SampleFloor.thirds(slope) == [10_000, 11_500, 13_000])
        #expect(SampleFloor.thirds([1, 2]) == nil)
        #expect(SampleFloor.thirds([5, 3, 4, 9]) == [5, 3, 4])
    }

    /// Many bytes per order but under 10 % of a large heap is not judged a leak; without orders,
    /// any growth over 10 % is.
    @Test func bothBoundsMustBePassed() throws {
        let large = try #require(SampleFloor([100_000, 100_500, 101_000, 101_500]))  // KiB: +1.5 %, 2 MiB
        #expect(LeakRule.bytesPerOrder(large, unitBytes: 1024, orders: 10_000) > 100)
        #expect(!LeakRule().isLeak(large, unitBytes: 1024, orders: 10_000))
        let idle = try #require(SampleFloor([1_000, 1_050, 1_200, 1_250]))
        #expect(LeakRule().isLeak(idle, unitBytes: 1024, orders: 0))
        #expect(!LeakRule().isLeak(idle, unitBytes: 1024, orders: 1_000_000))
    }
}
