import ERPCore
import ERPResilience
import Synchronization
import Testing

/// One attempt as the callee saw it.
struct AttemptRecord: Sendable {
    var metadata: CallMetadata
    var attemptNumber: Int
    var startedAt: Timestamp
    var error: RPCError?
}

/// A callee that plays a script of (duration, result) steps on the manual clock, honouring the
/// attempt's deadline the way a transport does: past it, the attempt ends in `deadlineExceeded`
/// at the deadline.
final class ScriptedCallee: Sendable {
    struct Step: Sendable {
        var duration: Duration
        var result: Result<String, RPCError>
    }

    let clock: ManualClock
    let attempts = Recorder<AttemptRecord>()
    private let steps: Mutex<[Step]>

    init(clock: ManualClock, _ steps: [Step]) {
        self.clock = clock
        self.steps = Mutex(steps)
    }

    func attempt(_ metadata: CallMetadata, _ attemptNumber: Int) async throws(RPCError) -> String {
        let startedAt = clock.now
        let step = steps.withLock { $0.isEmpty ? Step(duration: .milliseconds(1), result: .success("ok")) : $0.removeFirst() }
        var result = step.result
        if startedAt + step.duration >= metadata.deadline {
            clock.set(metadata.deadline)
            result = .failure(.deadlineExceeded)
        } else {
            clock.advance(by: step.duration)
        }
        attempts.append(AttemptRecord(metadata: metadata, attemptNumber: attemptNumber, startedAt: startedAt,
                                      error: result.failure))
        return try result.get()
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// A policy on a manual clock whose sleep advances the clock.
struct PolicyFixture {
    let clock: ManualClock
    let sleeps = Recorder<Duration>()
    let statistics = Recorder<CallStatistics>()
    let policy: CallPolicy

    init(settings: CallPolicySettings = .seed, seed: UInt64 = 1, sleepThrows: Bool = false) {
        let clock = ManualClock()
        let sleeps = self.sleeps
        let statistics = self.statistics
        self.clock = clock
        policy = CallPolicy(
            settings: settings, clock: clock, random: SeededRandomSource(seed: seed),
            sleep: { duration in
                sleeps.append(duration)
                if sleepThrows { throw CancellationError() }
                clock.advance(by: duration)
            },
            onCallFinished: { statistics.append($0) })
    }

    func metadata(deadlineIn remaining: Duration = .seconds(5), key: String? = nil) -> CallMetadata {
        CallMetadata(deadline: clock.now + remaining, correlationId: "corr_test", idempotencyKey: key)
    }

    /// Runs one call through the policy against `callee`; returns the value or the error.
    func call(_ callee: ScriptedCallee, metadata: CallMetadata, isIdempotent: Bool) async -> Result<String, RPCError> {
        do throws(RPCError) {
            return .success(try await policy.execute(metadata: metadata, isIdempotent: isIdempotent) {
                attemptMetadata, attemptNumber throws(RPCError) in
                try await callee.attempt(attemptMetadata, attemptNumber)
            })
        } catch {
            return .failure(error)
        }
    }
}

func step(_ milliseconds: Int, _ result: Result<String, RPCError>) -> ScriptedCallee.Step {
    ScriptedCallee.Step(duration: .milliseconds(milliseconds), result: result)
}

@Suite("Call policy")
struct CallPolicyTests {
    @Test func retriesATransientFailureOfAnIdempotentCall() async {
        let fixture = PolicyFixture()
        let callee = ScriptedCallee(clock: fixture.clock, [step(10, .failure(.unavailable("reset"))), step(10, .success("stock"))])
        let result = await fixture.call(callee, metadata: fixture.metadata(), isIdempotent: true)
        #expect(result == .success("stock"))
        #expect(callee.attempts.values.map(\.attemptNumber) == [1, 2])
        #expect(fixture.sleeps.values.count == 1)
        #expect(fixture.sleeps.values.allSatisfy { $0 >= .zero && $0 <= .milliseconds(100) })
        let statistics = fixture.statistics.values
        #expect(statistics.count == 1)
        #expect(statistics.first?.attemptCount == 2)
        #expect(statistics.first?.retryCount == 1)
        #expect(statistics.first?.backoffTotal == fixture.sleeps.values.first)
        #expect(statistics.first?.ending == .succeeded)
    }

    @Test func neverRetriesANonIdempotentCallWithoutKeyAfterAnUnknownOutcome() async {
        let fixture = PolicyFixture()
        let callee = ScriptedCallee(clock: fixture.clock, [step(10, .failure(.unavailable("reset"))), step(10, .success("charged"))])
        let result = await fixture.call(callee, metadata: fixture.metadata(), isIdempotent: false)
        #expect(result == .failure(.unavailable("reset")))
        #expect(callee.attempts.values.count == 1)
        #expect(fixture.sleeps.values.isEmpty)
        #expect(fixture.statistics.values.first?.ending == .failed(.unavailable("reset"), .gaveUp(.notIdempotent)))
    }

    @Test func retriesANonIdempotentCallThatCarriesAnIdempotencyKey() async {
        let fixture = PolicyFixture()
        let callee = ScriptedCallee(clock: fixture.clock, [step(10, .failure(.deadlineExceeded)), step(10, .success("charged"))])
        let result = await fixture.call(callee, metadata: fixture.metadata(key: "order_1:payment"), isIdempotent: false)
        #expect(result == .success("charged"))
        #expect(callee.attempts.values.map(\.metadata.idempotencyKey) == ["order_1:payment", "order_1:payment"])
    }

    @Test func overloadedWaitsAtLeastTheServersHint() async {
        let fixture = PolicyFixture()
        let callee = ScriptedCallee(clock: fixture.clock, [step(5, .failure(.overloaded(retryAfterMilliseconds: 800))), step(5, .success("ok"))])
        let result = await fixture.call(callee, metadata: fixture.metadata(), isIdempotent: false)
        #expect(result == .success("ok"))
        #expect(fixture.sleeps.values == [.milliseconds(800)])
        #expect(callee.attempts.values.last?.startedAt == epoch + .milliseconds(805))
    }

    @Test func eachAttemptGetsTheSoonerOfCallerDeadlineAndBreakerTimeout() async {
        var settings = CallPolicySettings.seed
        settings.nextHopMargin = .milliseconds(100)
        let fixture = PolicyFixture(settings: settings)
        let long = ScriptedCallee(clock: fixture.clock, [step(1, .success("ok"))])
        _ = await fixture.call(long, metadata: fixture.metadata(deadlineIn: .seconds(10)), isIdempotent: true)
        #expect(long.attempts.values.first?.metadata.deadline == epoch + .seconds(3))
        #expect(long.attempts.values.first?.metadata.correlationId == "corr_test")

        let start = fixture.clock.now
        let short = ScriptedCallee(clock: fixture.clock, [step(1, .success("ok"))])
        _ = await fixture.call(short, metadata: fixture.metadata(deadlineIn: .seconds(1)), isIdempotent: true)
        #expect(short.attempts.values.first?.metadata.deadline == start + .milliseconds(900))
    }

    @Test func anExpiredDeadlineMakesNoAttempt() async {
        let fixture = PolicyFixture()
        let callee = ScriptedCallee(clock: fixture.clock, [])
        let metadata = fixture.metadata(deadlineIn: .zero)
        #expect(await fixture.call(callee, metadata: metadata, isIdempotent: true) == .failure(.deadlineExceeded))
        #expect(callee.attempts.values.isEmpty)
        #expect(fixture.statistics.values.first?.ending == .failed(.deadlineExceeded, .deadlineExpired))
    }

    @Test func openBreakerFailsFastAndATrialClosesIt() async {
        var settings = CallPolicySettings.seed
        settings.circuitBreaker.volumeThreshold = 2
        let fixture = PolicyFixture(settings: settings)
        let failing = ScriptedCallee(clock: fixture.clock, [step(10, .failure(.unavailable("down"))), step(10, .failure(.unavailable("down")))])
        _ = await fixture.call(failing, metadata: fixture.metadata(), isIdempotent: false)
        _ = await fixture.call(failing, metadata: fixture.metadata(), isIdempotent: false)
        #expect(fixture.statistics.values.last?.transitions.map(\.event) == [.open])
        #expect(fixture.policy.circuitBreaker.state == .open)

        let untouched = ScriptedCallee(clock: fixture.clock, [])
        #expect(await fixture.call(untouched, metadata: fixture.metadata(), isIdempotent: true) == .failure(.unavailable("circuit open")))
        #expect(untouched.attempts.values.isEmpty)
        #expect(fixture.statistics.values.last?.breakerRejectionCount == 1)
        #expect(fixture.statistics.values.last?.ending == .failed(.unavailable("circuit open"), .circuitOpen))

        fixture.clock.advance(by: .seconds(30))
        let recovered = ScriptedCallee(clock: fixture.clock, [step(10, .success("ok"))])
        #expect(await fixture.call(recovered, metadata: fixture.metadata(), isIdempotent: true) == .success("ok"))
        #expect(fixture.statistics.values.last?.transitions.map(\.event) == [.halfOpen, .close])
        #expect(fixture.policy.circuitBreaker.state == .closed)
    }

    /// A first attempt that timed out may have done the work; the breaker then refusing the retry
    /// does not make it "not done". The gateway answered 503 "circuit open" (which a client reads
    /// as nothing happened) for orders the order service had taken and charged: the call's
    /// outcome is the unknown one, `deadlineExceeded` (504).
    @Test func aRefusalAfterAnUnknownOutcomeKeepsTheOutcomeUnknown() async {
        var settings = CallPolicySettings.seed
        settings.circuitBreaker.volumeThreshold = 1
        let fixture = PolicyFixture(settings: settings)
        let slow = ScriptedCallee(clock: fixture.clock, [step(5_000, .success("ok"))])
        let result = await fixture.call(slow, metadata: fixture.metadata(deadlineIn: .seconds(10), key: "order-1"), isIdempotent: false)
        #expect(slow.attempts.values.count == 1 && fixture.policy.circuitBreaker.state == .open)
        #expect(result == .failure(.deadlineExceeded))
        #expect(fixture.statistics.values.last?.ending == .failed(.deadlineExceeded, .circuitOpen))
    }

    /// A timeout counts against the callee only when the attempt had (nearly) the breaker's whole
    /// timeout; a caller's short deadline says nothing about the callee. A caller whose timeout
    /// equals the breaker's (3 s) reaches the policy a few microseconds later on a wall clock:
    /// that still counts.
    @Test(arguments: [(Duration.seconds(1), CircuitBreaker.State.closed), (.seconds(10), .open),
                      (.seconds(3) - .microseconds(5), .open), (.milliseconds(2_500), .closed)])
    func timeoutsCountOnlyWhenTheBreakerTimeoutBoundTheAttempt(deadline: Duration, expected: CircuitBreaker.State) async {
        var settings = CallPolicySettings.seed
        // A window long enough to hold all five 3-second attempts (the volume threshold).
        settings.circuitBreaker.rollingCountTimeout = .seconds(60)
        let fixture = PolicyFixture(settings: settings)
        for _ in 0..<5 {
            let slow = ScriptedCallee(clock: fixture.clock, [step(60_000, .success("late"))])
            #expect(await fixture.call(slow, metadata: fixture.metadata(deadlineIn: deadline), isIdempotent: false) == .failure(.deadlineExceeded))
        }
        #expect(fixture.policy.circuitBreaker.state == expected)
    }

    @Test func aCancelledWaitReturnsTheAttemptsError() async {
        let fixture = PolicyFixture(sleepThrows: true)
        let callee = ScriptedCallee(clock: fixture.clock, [step(10, .failure(.unavailable("reset")))])
        #expect(await fixture.call(callee, metadata: fixture.metadata(), isIdempotent: true) == .failure(.unavailable("reset")))
        #expect(fixture.statistics.values.first?.ending == .failed(.unavailable("reset"), .sleepInterrupted))
    }

    @Test func typedRequestsTakeIdempotencyFromTheirContract() async throws {
        let fixture = PolicyFixture()
        let clock = fixture.clock
        let sent = Recorder<String>()
        let view = OrderView(orderId: "order_1", userId: "u", shopId: "s", items: [], totalAmount: Money(minorUnits: 0, currency: "EUR"),
                             status: .pending, reason: nil)
        let flaky: @Sendable (String, Int) throws(RPCError) -> OrderView = { method, attemptNumber throws(RPCError) in
            sent.append(method)
            clock.advance(by: .milliseconds(5))
            if attemptNumber == 1 { throw RPCError.unavailable("reset") }
            return view
        }
        let fetched = try await fixture.policy.execute(FetchOrder(orderId: "order_1"), metadata: fixture.metadata()) {
            _, _, attemptNumber throws(RPCError) in try flaky(FetchOrder.method, attemptNumber)
        }
        #expect(fetched == view)
        await #expect(throws: RPCError.unavailable("reset")) {
            try await fixture.policy.execute(CreateOrder(userId: "u", shopId: "s", items: []), metadata: fixture.metadata()) {
                _, _, attemptNumber throws(RPCError) in try flaky(CreateOrder.method, attemptNumber)
            }
        }
        #expect(sent.values == [FetchOrder.method, FetchOrder.method, CreateOrder.method])
    }

    /// Laws of a whole call, over random scripts: attempts start before the deadline and get the
    /// right deadline; retries stay within `attemptCountMax`; waits are the reported waits and end
    /// before the deadline; a non-idempotent call without key is retried only after `overloaded`.
    @Test func callsObeyTheLawsUnderRandomScripts() async {
        var attemptsSeen = 0
        var retriesSeen = 0
        var rejectionsSeen = 0
        for seed in propertySeeds.prefix(150) {
            let random = SeededRandomSource(seed: seed)
            let baseDelay = Duration.milliseconds(random.int(in: 10...200))
            let settings = CallPolicySettings(
                circuitBreaker: CircuitBreakerSettings(timeout: .milliseconds(random.int(in: 200...3000)),
                                                       resetTimeout: .seconds(random.int(in: 1...5)),
                                                       volumeThreshold: random.int(in: 2...10)),
                retry: RetryPolicy(attemptCountMax: random.int(in: 1...6), baseDelay: baseDelay,
                                   maxDelay: baseDelay * random.int(in: 1...10)),
                nextHopMargin: .milliseconds(random.int(in: 0...100)))
            let fixture = PolicyFixture(settings: settings, seed: seed)
            for _ in 0..<20 {
                let script = (0..<8).map { _ in
                    step(random.int(in: 0...3500), random.pick([
                        .success("ok"), .failure(.unavailable("reset")), .failure(.overloaded(retryAfterMilliseconds: nil)),
                        .failure(.overloaded(retryAfterMilliseconds: Int64(random.int(in: 1...1000)))),
                        .failure(.rejected(code: "out_of_stock", message: "")), .failure(.deadlineExceeded),
                    ] as [Result<String, RPCError>]))
                }
                let callee = ScriptedCallee(clock: fixture.clock, script)
                let metadata = fixture.metadata(deadlineIn: .milliseconds(random.int(in: 50...6000)),
                                                key: random.chance(0.3) ? "key_\(seed)" : nil)
                let isIdempotent = random.chance(0.5)
                let sleepsBefore = fixture.sleeps.values.count
                let result = await fixture.call(callee, metadata: metadata, isIdempotent: isIdempotent)
                let callDeadline = metadata.deadline - settings.nextHopMargin
                let attempts = callee.attempts.values
                let sleeps = Array(fixture.sleeps.values.dropFirst(sleepsBefore))
                guard let statistics = fixture.statistics.values.last else {
                    Issue.record("seed \(seed): no statistics reported")
                    return
                }
                let context = "seed \(seed), idempotent \(isIdempotent), key \(metadata.idempotencyKey ?? "none"), "
                    + "attempts \(attempts.map { $0.error?.kind ?? "ok" }), sleeps \(sleeps.map(\.shortDescription))"
                attemptsSeen += attempts.count
                retriesSeen += statistics.retryCount
                rejectionsSeen += statistics.breakerRejectionCount

                #expect(attempts.map(\.attemptNumber) == Array(stride(from: 1, through: attempts.count, by: 1)), "\(context)")
                #expect(attempts.count <= settings.retry.attemptCountMax, "\(context)")
                #expect(statistics.attemptCount == attempts.count, "\(context)")
                #expect(statistics.retryCount == sleeps.count, "\(context)")
                #expect(statistics.backoffTotal == sleeps.reduce(.zero, +), "\(context)")
                #expect(statistics.breakerRejectionCount <= 1, "\(context)")
                for attempt in attempts {
                    #expect(attempt.startedAt < callDeadline, "an attempt started at or after the deadline: \(context)")
                    #expect(attempt.metadata.deadline == min(callDeadline, attempt.startedAt + settings.circuitBreaker.timeout), "\(context)")
                }
                #expect(fixture.clock.now <= metadata.deadline, "the call outlived its deadline: \(context)")
                if !isIdempotent, metadata.idempotencyKey == nil {
                    for attempt in attempts.dropLast() {
                        guard case .overloaded = attempt.error else {
                            Issue.record("a non-idempotent call without key was retried after \(attempt.error?.kind ?? "success"): \(context)")
                            continue
                        }
                    }
                }
                switch (result, statistics.ending) {
                case (.success, .succeeded):
                    #expect(attempts.last?.error == nil, "\(context)")
                case (.failure(let thrown), .failed(let reported, _)):
                    #expect(thrown == reported, "\(context)")
                default:
                    Issue.record("result \(result) but statistics say \(statistics.ending): \(context)")
                }
            }
        }
        #expect(attemptsSeen > 1500)
        #expect(retriesSeen > 300)
        #expect(rejectionsSeen > 50)
    }
}
