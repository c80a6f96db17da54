import ERPCore
import ERPResilience
import Testing

@Suite("Circuit breaker")
struct CircuitBreakerTests {
    static let settings = CircuitBreakerSettings(
        timeout: .seconds(3), errorThresholdPercentage: 50, resetTimeout: .seconds(30),
        rollingCountTimeout: .seconds(10), rollingCountBuckets: 10, volumeThreshold: 5)

    /// Admits one call at `now` and records `outcome` for it at once.
    static func call(_ breaker: inout CircuitBreaker, _ outcome: CircuitBreaker.Outcome,
                     at now: Timestamp) -> [CircuitBreaker.Transition] {
        let admission = breaker.admit(now: now)
        guard case .allowed(let ticket) = admission.decision else {
            Issue.record("call at \(now) was rejected")
            return admission.transitions
        }
        return admission.transitions + breaker.record(outcome, ticket: ticket, now: now)
    }

    /// Opens a seed-settings breaker at `epoch` with five failures.
    static func openedBreaker() -> CircuitBreaker {
        var breaker = CircuitBreaker(settings: settings)
        for _ in 0..<5 { _ = call(&breaker, .failure, at: epoch) }
        precondition(breaker.state == .open)
        return breaker
    }

    @Test func startsClosedAndAdmitsCalls() {
        var breaker = CircuitBreaker()
        let admission = breaker.admit(now: epoch)
        #expect(breaker.state == .closed)
        #expect(admission.isAllowed)
        #expect(admission.transitions.isEmpty)
    }

    @Test func doesNotOpenBeforeVolumeThreshold() {
        var breaker = CircuitBreaker(settings: Self.settings)
        for index in 1...4 {
            #expect(Self.call(&breaker, .failure, at: epoch).isEmpty, "failure \(index) of 4 must not open")
        }
        #expect(breaker.state == .closed)
        #expect(breaker.rollingCounts(now: epoch).failures == 4)
        let transitions = Self.call(&breaker, .failure, at: epoch)
        #expect(transitions.map(\.event) == [.open])
        #expect(breaker.state == .open)
    }

    @Test func opensAtThresholdPercentageButNotBelow() {
        var settings = Self.settings
        settings.volumeThreshold = 4
        var atThreshold = CircuitBreaker(settings: settings)
        for outcome in [CircuitBreaker.Outcome.success, .success, .failure] {
            #expect(Self.call(&atThreshold, outcome, at: epoch).isEmpty)
        }
        // Two failures in four calls: exactly 50 %.
        #expect(Self.call(&atThreshold, .timeout, at: epoch).map(\.event) == [.open])

        var below = CircuitBreaker(settings: settings)
        for outcome in [CircuitBreaker.Outcome.success, .success, .success, .failure, .failure] {
            #expect(Self.call(&below, outcome, at: epoch).isEmpty)
        }
        #expect(below.rollingCounts(now: epoch).failurePercentage == 40)
        #expect(below.state == .closed)
    }

    @Test func openRejectsUntilResetTimeoutThenAdmitsOneTrial() {
        var breaker = Self.openedBreaker()
        let early = breaker.admit(now: epoch + .seconds(30) - .nanoseconds(1))
        #expect(early.decision == .rejected(retryAfter: .nanoseconds(1)))
        #expect(early.transitions.isEmpty)

        let trialAdmission = breaker.admit(now: epoch + .seconds(30))
        #expect(trialAdmission.transitions.map(\.event) == [.halfOpen])
        guard case .allowed(let trial) = trialAdmission.decision else {
            Issue.record("the first call after resetTimeout must be the trial")
            return
        }
        #expect(trial.isTrial)
        #expect(breaker.state == .halfOpen)

        let second = breaker.admit(now: epoch + .seconds(31))
        #expect(second.decision == .rejected(retryAfter: .seconds(2)), "the trial has 2 s of its 3 s timeout left")
        #expect(breaker.totals.rejections == 2)
    }

    @Test func successfulTrialClosesAndStartsAnEmptyWindow() {
        var breaker = Self.openedBreaker()
        let at = epoch + .seconds(30)
        guard case .allowed(let trial) = breaker.admit(now: at).decision else {
            Issue.record("trial not admitted")
            return
        }
        let transitions = breaker.record(.success, ticket: trial, now: at + .milliseconds(5))
        #expect(transitions.map(\.event) == [.close])
        #expect(transitions.first?.from == .halfOpen)
        #expect(breaker.state == .closed)
        #expect(breaker.rollingCounts(now: at + .milliseconds(5)).calls == 0)
        #expect(breaker.admit(now: at + .milliseconds(6)).isAllowed)
    }

    @Test func failedTrialReopensForAnotherResetTimeout() {
        var breaker = Self.openedBreaker()
        let at = epoch + .seconds(30)
        guard case .allowed(let trial) = breaker.admit(now: at).decision else {
            Issue.record("trial not admitted")
            return
        }
        #expect(breaker.record(.failure, ticket: trial, now: at + .seconds(1)).map(\.event) == [.open])
        #expect(breaker.admit(now: at + .seconds(1)).decision == .rejected(retryAfter: .seconds(30)))
    }

    @Test func trialNotReportedWithinTimeoutIsLost() {
        var breaker = Self.openedBreaker()
        let at = epoch + .seconds(30)
        guard case .allowed(let trial) = breaker.admit(now: at).decision else {
            Issue.record("trial not admitted")
            return
        }
        let late = breaker.admit(now: at + .seconds(3))
        #expect(late.transitions.map(\.event) == [.open])
        #expect(late.decision == .rejected(retryAfter: .seconds(30)))
        // The lost trial's answer arrives after all: it no longer decides anything.
        #expect(breaker.record(.success, ticket: trial, now: at + .seconds(4)).isEmpty)
        #expect(breaker.state == .open)
    }

    @Test func ignoredTrialFreesTheTrialSlot() {
        var breaker = Self.openedBreaker()
        let at = epoch + .seconds(30)
        guard case .allowed(let trial) = breaker.admit(now: at).decision else {
            Issue.record("trial not admitted")
            return
        }
        #expect(breaker.record(.ignored, ticket: trial, now: at).isEmpty)
        #expect(breaker.state == .halfOpen)
        guard case .allowed(let next) = breaker.admit(now: at).decision else {
            Issue.record("a second trial must be admitted once the first ended ignored")
            return
        }
        #expect(next.isTrial)
    }

    @Test func rollingWindowForgetsOldFailures() {
        var forgetting = CircuitBreaker(settings: Self.settings)
        for _ in 0..<4 { _ = Self.call(&forgetting, .failure, at: epoch) }
        let later = epoch + .seconds(10)
        #expect(forgetting.rollingCounts(now: later).calls == 0)
        #expect(Self.call(&forgetting, .failure, at: later).isEmpty)
        #expect(forgetting.state == .closed)

        // Control: one bucket sooner, the four failures are still in the window and the fifth opens.
        var remembering = CircuitBreaker(settings: Self.settings)
        for _ in 0..<4 { _ = Self.call(&remembering, .failure, at: epoch) }
        let sooner = epoch + .seconds(9)
        #expect(remembering.rollingCounts(now: sooner).failures == 4)
        #expect(Self.call(&remembering, .failure, at: sooner).map(\.event) == [.open])
    }

    @Test func outcomesOfCallsAdmittedBeforeTheLastCloseAreDropped() {
        var breaker = CircuitBreaker(settings: Self.settings)
        guard case .allowed(let old) = breaker.admit(now: epoch).decision else {
            Issue.record("not admitted")
            return
        }
        for _ in 0..<5 { _ = Self.call(&breaker, .failure, at: epoch) }
        let at = epoch + .seconds(30)
        guard case .allowed(let trial) = breaker.admit(now: at).decision else {
            Issue.record("trial not admitted")
            return
        }
        _ = breaker.record(.success, ticket: trial, now: at)
        #expect(breaker.state == .closed)
        #expect(breaker.record(.failure, ticket: old, now: at).isEmpty)
        #expect(breaker.rollingCounts(now: at).calls == 0)
    }

    @Test func clockSteppingBackIsTakenAsStandingStill() {
        var breaker = Self.openedBreaker()
        _ = breaker.admit(now: epoch + .seconds(20))
        let stepBack = breaker.admit(now: epoch + .seconds(5))
        #expect(stepBack.decision == .rejected(retryAfter: .seconds(10)), "the reset timer must not run backwards")
    }

    // MARK: Property: the state machine against a reference model

    @Test func followsTheReferenceModelUnderRandomOperations() {
        var coverage = Coverage()
        for seed in propertySeeds {
            var harness = BreakerHarness(seed: seed)
            harness.run(steps: 400)
            coverage.add(harness.coverage)
        }
        // The law is only tested if every edge of the state machine was walked.
        #expect(coverage.closedToOpen > 0)
        #expect(coverage.openToHalfOpen > 0)
        #expect(coverage.halfOpenToClosed > 0)
        #expect(coverage.halfOpenToOpen > 0)
        #expect(coverage.rejections > 0)
        #expect(coverage.halfOpenRejections > 0)
    }
}

struct Coverage {
    var closedToOpen = 0
    var openToHalfOpen = 0
    var halfOpenToClosed = 0
    var halfOpenToOpen = 0
    var rejections = 0
    var halfOpenRejections = 0

    mutating func add(_ other: Coverage) {
        closedToOpen += other.closedToOpen
        openToHalfOpen += other.openToHalfOpen
        halfOpenToClosed += other.halfOpenToClosed
        halfOpenToOpen += other.halfOpenToOpen
        rejections += other.rejections
        halfOpenRejections += other.halfOpenRejections
    }
}

final class FirstFailure {
    var happened = false
}

/// Drives a breaker with random admits, outcomes and time steps, and checks every answer against
/// a reference model written from the specification. Callers here are honest: each reports its
/// outcome before its ticket's `timeout` is up (a timeout at the latest), as `CallPolicy` does.
struct BreakerHarness {
    let seed: UInt64
    let random: SeededRandomSource
    let settings: CircuitBreakerSettings
    let failingProbability: Double
    var breaker: CircuitBreaker
    var now = epoch
    var outstanding: [CircuitBreaker.Ticket] = []
    /// The model's closed period each ticket was admitted in.
    var ticketPeriods: [UInt64: Int] = [:]
    var period = 0
    var state = CircuitBreaker.State.closed
    var openedAt = epoch
    /// Counted outcomes of the current closed period: when, and whether failing.
    var window: [(at: Timestamp, failing: Bool)] = []
    var coverage = Coverage()
    /// Set on the first failed check; a class so that checking needs no exclusive access.
    let firstFailure = FirstFailure()

    init(seed: UInt64) {
        self.seed = seed
        random = SeededRandomSource(seed: seed)
        let bucketCount = random.int(in: 1...10)
        settings = CircuitBreakerSettings(
            timeout: .milliseconds(random.int(in: 100...3000)),
            errorThresholdPercentage: random.pick([0, 25, 50, 75, 100] as [Double]),
            resetTimeout: .milliseconds(random.int(in: 500...8000)),
            rollingCountTimeout: .milliseconds(bucketCount * random.int(in: 100...2000)),
            rollingCountBuckets: bucketCount,
            volumeThreshold: random.int(in: 0...8))
        failingProbability = random.pick([0.1, 0.5, 0.9])
        breaker = CircuitBreaker(settings: settings)
    }

    mutating func run(steps: Int) {
        for _ in 0..<steps where !firstFailure.happened {
            let roll = random.unit()
            if roll < 0.45 {
                admit()
            } else if roll < 0.8, !outstanding.isEmpty {
                let index = random.int(in: 0...(outstanding.count - 1))
                record(outstanding.remove(at: index), outcome: randomOutcome())
            } else if roll < 0.85 {
                let transitions = breaker.advance(now: now)
                expect(transitions, timeDriven())
            } else {
                advance(by: .milliseconds(random.int(in: 0...2500)))
            }
            check(breaker.state == state, "state \(breaker.state) but the model says \(state)")
            check(outstanding.filter(\.isTrial).count <= 1, "two half-open trials are out at once")
        }
    }

    mutating func randomOutcome() -> CircuitBreaker.Outcome {
        if random.chance(0.05) { return .ignored }
        if random.chance(failingProbability) { return random.chance(0.5) ? .failure : .timeout }
        return .success
    }

    /// Moves time forward; callers whose timeout falls on the way report a timeout in time.
    mutating func advance(by step: Duration) {
        let target = now + step
        while let earliest = outstanding.indices.min(by: { outstanding[$0].admittedAt < outstanding[$1].admittedAt }) {
            let lastMoment = outstanding[earliest].admittedAt + settings.timeout - .nanoseconds(1)
            guard lastMoment < target else { break }
            now = max(now, lastMoment)
            record(outstanding.remove(at: earliest), outcome: .timeout)
        }
        now = target
    }

    mutating func admit() {
        let admission = breaker.admit(now: now)
        expect(admission.transitions, timeDriven())
        switch state {
        case .closed:
            guard case .allowed(let ticket) = admission.decision, !ticket.isTrial else {
                check(false, "a closed breaker must admit a regular call, got \(admission.decision)")
                return
            }
            outstanding.append(ticket)
            ticketPeriods[ticket.serial] = period
        case .open:
            coverage.rejections += 1
            let expected = openedAt + settings.resetTimeout - now
            check(expected > .zero && admission.decision == .rejected(retryAfter: expected),
                  "open breaker must reject with retryAfter \(expected), got \(admission.decision)")
        case .halfOpen:
            if outstanding.contains(where: \.isTrial) {
                coverage.rejections += 1
                coverage.halfOpenRejections += 1
                guard case .rejected = admission.decision else {
                    check(false, "a second half-open trial was admitted")
                    return
                }
            } else {
                guard case .allowed(let ticket) = admission.decision, ticket.isTrial else {
                    check(false, "a half-open breaker with no trial out must admit a trial, got \(admission.decision)")
                    return
                }
                outstanding.append(ticket)
            }
        }
    }

    mutating func record(_ ticket: CircuitBreaker.Ticket, outcome: CircuitBreaker.Outcome) {
        let transitions = breaker.record(outcome, ticket: ticket, now: now)
        var expected = timeDriven()
        let failing = outcome == .failure || outcome == .timeout
        if ticket.isTrial {
            check(state == .halfOpen, "an honest trial ends while the breaker is half-open")
            switch outcome {
            case .success:
                expected.append(.closed)
                state = .closed
                period += 1
                window = []
                coverage.halfOpenToClosed += 1
            case .failure, .timeout:
                expected.append(.open)
                state = .open
                openedAt = now
                coverage.halfOpenToOpen += 1
            case .ignored:
                break
            }
        } else if state == .closed, ticketPeriods[ticket.serial] == period, outcome != .ignored {
            window.append((now, failing))
            let (calls, failingCalls) = windowCounts()
            let counts = breaker.rollingCounts(now: now)
            check(counts.calls == calls && counts.failures + counts.timeouts == failingCalls,
                  "window holds \(counts.calls) calls / \(counts.failures + counts.timeouts) failing; model \(calls) / \(failingCalls)")
            if failing, calls >= settings.volumeThreshold,
               Double(failingCalls) * 100 / Double(calls) >= settings.errorThresholdPercentage {
                expected.append(.open)
                state = .open
                openedAt = now
                coverage.closedToOpen += 1
            }
        }
        expect(transitions, expected)
    }

    /// The transitions time alone causes now, applied to the model. Honest callers never lose
    /// a trial, so only `open → halfOpen` is due to time.
    mutating func timeDriven() -> [CircuitBreaker.State] {
        guard state == .open, now >= openedAt + settings.resetTimeout else { return [] }
        state = .halfOpen
        coverage.openToHalfOpen += 1
        return [.halfOpen]
    }

    func windowCounts() -> (calls: Int, failing: Int) {
        let length = settings.rollingCountTimeout.nanoseconds / Int64(settings.rollingCountBuckets)
        let current = now.nanosecondsSinceEpoch / length
        let inWindow = window.filter { $0.at.nanosecondsSinceEpoch / length > current - Int64(settings.rollingCountBuckets) }
        return (inWindow.count, inWindow.filter(\.failing).count)
    }

    /// Compares actual transitions with the model's list of target states, and checks they chain.
    mutating func expect(_ transitions: [CircuitBreaker.Transition], _ expectedTargets: [CircuitBreaker.State]) {
        check(transitions.map(\.to) == expectedTargets,
              "transitions \(transitions.map(\.description)) but the model expects targets \(expectedTargets)")
        for pair in zip(transitions, transitions.dropFirst()) {
            check(pair.0.to == pair.1.from, "transitions do not chain: \(pair.0) then \(pair.1)")
        }
        for transition in transitions {
            check(transition.at == now, "transition stamped \(transition.at), now is \(now)")
        }
    }

    func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        guard !condition, !firstFailure.happened else { return }
        firstFailure.happened = true
        Issue.record("seed \(seed), at \(now - epoch): \(message()) [settings \(settings)]")
    }
}
