import ERPCore
import ERPResilience
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    static let unknownOutcomeErrors: [RPCError] = [.unavailable("connection reset"), .deadlineExceeded]
    static let answers: [RPCError] = [.rejected(code: "out_of_stock", message: "none left"), .unauthenticated]

    @Test func seedPolicyIsThreeRetriesWithDoublingCaps() {
        let policy = RetryPolicy.seed
        #expect(policy.attemptCountMax == 4)
        #expect((0..<3).map { policy.backoffCap(retryIndex: $0) } == [.milliseconds(100), .milliseconds(200), .milliseconds(400)])
        #expect(policy.backoffBudgetMax == .milliseconds(700))
    }

    @Test func backoffCapStopsAtMaxDelayWithoutOverflow() {
        let policy = RetryPolicy(attemptCountMax: 10, baseDelay: .milliseconds(300), maxDelay: .seconds(1))
        #expect(policy.backoffCap(retryIndex: 1) == .milliseconds(600))
        #expect(policy.backoffCap(retryIndex: 2) == .seconds(1))
        #expect(policy.backoffCap(retryIndex: 70) == .seconds(1))
    }

    @Test(arguments: unknownOutcomeErrors)
    func unknownOutcomeIsRetriedOnlyWhenRepeatingIsHarmless(error: RPCError) {
        let policy = RetryPolicy.seed
        let random = SeededRandomSource(seed: 1)
        func decide(isIdempotent: Bool, hasKey: Bool) -> RetryPolicy.Decision {
            policy.decide(after: error, attemptNumber: 1, isIdempotent: isIdempotent, hasIdempotencyKey: hasKey,
                          deadline: epoch + .seconds(5), now: epoch, random: random)
        }
        #expect(decide(isIdempotent: false, hasKey: false) == .giveUp(.notIdempotent))
        guard case .retry = decide(isIdempotent: true, hasKey: false) else {
            Issue.record("an idempotent call must be retried after \(error)")
            return
        }
        guard case .retry = decide(isIdempotent: false, hasKey: true) else {
            Issue.record("a keyed call must be retried after \(error)")
            return
        }
    }

    @Test(arguments: answers)
    func answersAreNeverRetried(error: RPCError) {
        let decision = RetryPolicy.seed.decide(after: error, attemptNumber: 1, isIdempotent: true, hasIdempotencyKey: true,
                                               deadline: epoch + .seconds(5), now: epoch, random: SeededRandomSource(seed: 1))
        #expect(decision == .giveUp(.notRetryable))
    }

    @Test func overloadedIsRetriedAfterAtLeastTheHintWhateverTheRequest() {
        let decision = RetryPolicy.seed.decide(after: .overloaded(retryAfterMilliseconds: 1500), attemptNumber: 1,
                                               isIdempotent: false, hasIdempotencyKey: false,
                                               deadline: epoch + .seconds(5), now: epoch, random: SeededRandomSource(seed: 1))
        #expect(decision == .retry(after: .milliseconds(1500)), "the hint exceeds the 100 ms cap, so it is the wait")
    }

    @Test func stopsAfterAttemptCountMax() {
        let policy = RetryPolicy.seed
        let random = SeededRandomSource(seed: 1)
        for attemptNumber in 1...3 {
            guard case .retry = policy.decide(after: .unavailable("down"), attemptNumber: attemptNumber, isIdempotent: true,
                                              hasIdempotencyKey: false, deadline: epoch + .seconds(60), now: epoch, random: random)
            else {
                Issue.record("attempt \(attemptNumber) of 4 must be retried")
                continue
            }
        }
        #expect(policy.decide(after: .unavailable("down"), attemptNumber: 4, isIdempotent: true, hasIdempotencyKey: false,
                              deadline: epoch + .seconds(60), now: epoch, random: random) == .giveUp(.attemptsExhausted))
    }

    @Test func fullJitterSpreadsOverTheWholeRange() {
        let policy = RetryPolicy.seed
        let random = SeededRandomSource(seed: 7)
        let cap = policy.backoffCap(retryIndex: 2).nanoseconds
        let draws = (0..<4000).map { _ in policy.jitteredDelay(retryIndex: 2, random: random).nanoseconds }
        let mean = Double(draws.reduce(0, +)) / Double(draws.count)
        #expect(draws.allSatisfy { (0...cap).contains($0) })
        #expect(abs(mean / Double(cap) - 0.5) < 0.03, "full jitter has mean cap/2, got \(mean / Double(cap)) of the cap")
        #expect(draws.min()! < cap / 20)
        #expect(draws.max()! > cap - cap / 20)
    }

    /// The laws, over random policies, errors, requests and deadlines.
    @Test func decisionsObeyTheLawsForRandomInputs() {
        let errors: [RPCError] = Self.unknownOutcomeErrors + Self.answers
            + [.overloaded(retryAfterMilliseconds: nil), .overloaded(retryAfterMilliseconds: 50), .overloaded(retryAfterMilliseconds: 900)]
        var retries = 0
        var deadlineGiveUps = 0
        for seed in propertySeeds {
            let random = SeededRandomSource(seed: seed)
            let baseDelay = Duration.milliseconds(random.int(in: 1...200))
            let policy = RetryPolicy(attemptCountMax: random.int(in: 1...8), baseDelay: baseDelay,
                                     maxDelay: baseDelay * random.int(in: 1...20))
            for _ in 0..<50 {
                let error = random.pick(errors)
                let attemptNumber = random.int(in: 1...9)
                let isIdempotent = random.chance(0.5)
                let hasKey = random.chance(0.5)
                let now = epoch + .milliseconds(random.int(in: 0...10_000))
                let deadline = now + .milliseconds(random.int(in: -500...3000))
                let decision = policy.decide(after: error, attemptNumber: attemptNumber, isIdempotent: isIdempotent,
                                             hasIdempotencyKey: hasKey, deadline: deadline, now: now, random: random)
                let context = "seed \(seed): \(error), attempt \(attemptNumber), idempotent \(isIdempotent), key \(hasKey), "
                    + "\((deadline - now).shortDescription) left, \(policy) → \(decision)"
                let cap = policy.backoffCap(retryIndex: attemptNumber - 1)
                var hint: Duration?
                if case .overloaded(let milliseconds?) = error { hint = .milliseconds(milliseconds) }

                if error.outcomeIsUnknown, !isIdempotent, !hasKey {
                    #expect(decision == .giveUp(.notIdempotent), "never retry a non-idempotent call without a key: \(context)")
                    continue
                }
                if Self.answers.contains(error) {
                    #expect(decision == .giveUp(.notRetryable), "\(context)")
                    continue
                }
                if attemptNumber >= policy.attemptCountMax {
                    #expect(decision == .giveUp(.attemptsExhausted), "\(context)")
                    continue
                }
                switch decision {
                case .retry(let delay):
                    retries += 1
                    #expect(delay >= .zero, "\(context)")
                    #expect(now + delay < deadline, "a retry must start before the deadline: \(context)")
                    if let hint {
                        #expect(delay >= hint, "the server's hint is a floor: \(context)")
                        #expect(delay <= max(hint, cap), "\(context)")
                    } else {
                        #expect(delay <= cap, "the wait is within [0, cap]: \(context)")
                    }
                case .giveUp(let reason):
                    deadlineGiveUps += 1
                    #expect(reason == .retryWouldPassDeadline, "\(context)")
                    // Giving up for the deadline is only right when the wait could reach it.
                    #expect(deadline - now <= max(hint ?? .zero, cap), "gave up with the deadline out of reach: \(context)")
                }
            }
        }
        #expect(retries > 1000)
        #expect(deadlineGiveUps > 100)
    }
}
