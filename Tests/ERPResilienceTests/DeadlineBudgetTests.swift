import ERPCore
import ERPResilience
import Testing

@Suite("Deadline budget")
struct DeadlineBudgetTests {
    @Test func remainingShrinksWithTheClockAndStopsAtZero() {
        let clock = ManualClock()
        let budget = DeadlineBudget(deadline: epoch + .seconds(5), clock: clock)
        #expect(budget.remaining == .seconds(5))
        clock.advance(by: .milliseconds(4200))
        #expect(budget.remaining == .milliseconds(800))
        #expect(!budget.isExpired)
        clock.advance(by: .seconds(2))
        #expect(budget.remaining == .zero)
        #expect(budget.isExpired)
    }

    @Test func theDeadlineInstantItselfIsExpired() {
        let clock = ManualClock()
        let budget = DeadlineBudget(deadline: epoch + .seconds(1), clock: clock)
        clock.advance(by: .seconds(1) - .nanoseconds(1))
        #expect(!budget.isExpired)
        clock.advance(by: .nanoseconds(1))
        #expect(budget.isExpired)
    }

    @Test func nextHopGetsTheSameAbsoluteDeadlineLessTheMargin() {
        let clock = ManualClock()
        let metadata = CallMetadata(deadline: epoch + .seconds(5), correlationId: "corr_1")
        let budget = DeadlineBudget(metadata: metadata, clock: clock)
        clock.advance(by: .seconds(1))
        // Absolute: time spent here is not handed on again.
        #expect(budget.forNextHop() == epoch + .seconds(5))
        #expect(budget.forNextHop(margin: .milliseconds(50)) == epoch + .milliseconds(4950))
    }

    @Test func attemptDeadlineIsTheSoonerOfDeadlineAndTimeout() {
        let clock = ManualClock()
        let budget = DeadlineBudget(deadline: epoch + .seconds(5), clock: clock)
        #expect(budget.attemptDeadline(timeout: .seconds(3)) == epoch + .seconds(3))
        clock.advance(by: .seconds(4))
        #expect(budget.attemptDeadline(timeout: .seconds(3)) == epoch + .seconds(5))
    }

    @Test func expiredWorkIsRejectedWithDeadlineExceeded() {
        let clock = ManualClock()
        let metadata = CallMetadata(deadline: epoch + .milliseconds(10), correlationId: "corr_1")
        #expect(throws: Never.self) { try DeadlineBudget.ensureNotExpired(metadata, clock: clock) }
        clock.advance(by: .milliseconds(10))
        #expect(throws: RPCError.deadlineExceeded) { try DeadlineBudget.ensureNotExpired(metadata, clock: clock) }
    }
}
