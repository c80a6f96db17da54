import ERPCore
import Synchronization

/// The settings of a `CallPolicy`.
public struct CallPolicySettings: Sendable, Hashable, Codable {
    public var circuitBreaker: CircuitBreakerSettings
    public var retry: RetryPolicy
    /// Time this hop keeps for itself out of the caller's deadline, to handle the answer or its
    /// absence: attempts get the caller's deadline less this margin.
    public var nextHopMargin: Duration

    public init(circuitBreaker: CircuitBreakerSettings = .seed, retry: RetryPolicy = .seed, nextHopMargin: Duration = .zero) {
        self.circuitBreaker = circuitBreaker
        self.retry = retry
        self.nextHopMargin = nextHopMargin
    }

    /// The seed's breaker and retries, with no margin.
    public static let seed = CallPolicySettings()

    /// Throws for settings no policy can run with, naming the setting.
    public func validate() throws(ResilienceConfigurationError) {
        try circuitBreaker.validate(path: "circuitBreaker")
        try retry.validate(path: "retry")
        try SettingCheck.nonNegative(nextHopMargin, "nextHopMargin")
        try SettingCheck.atMost(nextHopMargin, CircuitBreakerSettings.durationLimit, "nextHopMargin")
    }

    /// Also throws when calls given `deadline` could not fit their retries, or when the margin
    /// leaves their attempts no time at all.
    public func validate(against deadline: Duration) throws(ResilienceConfigurationError) {
        try validate()
        try retry.validate(path: "retry", against: deadline)
        guard nextHopMargin < deadline else {
            throw ResilienceConfigurationError(
                setting: "nextHopMargin", requirement: "must be shorter than the deadline \(deadline.shortDescription)",
                actual: nextHopMargin.shortDescription)
        }
    }
}

/// What one `CallPolicy.execute` did, for reports to count.
public struct CallStatistics: Sendable, Hashable {
    /// How the call ended.
    public enum Ending: Sendable, Hashable {
        case succeeded
        /// The error the caller received, and why no further attempt was made.
        case failed(RPCError, FailureReason)
    }

    /// Why a call ended in an error.
    public enum FailureReason: Sendable, Hashable {
        /// The retry policy declined to try again.
        case gaveUp(RetryPolicy.GiveUpReason)
        /// The breaker refused the attempt (`.unavailable("circuit open")`).
        case circuitOpen
        /// The deadline (less the margin) had passed before an attempt could start.
        case deadlineExpired
        /// The injected sleep threw (the caller was cancelled) while waiting to retry.
        case sleepInterrupted
    }

    public var correlationId: String
    /// Attempts that reached the callee.
    public var attemptCount = 0
    /// Retries scheduled (each followed by a wait).
    public var retryCount = 0
    /// Attempts the breaker refused: 0 or 1, as a refusal ends the call.
    public var breakerRejectionCount = 0
    /// Time spent waiting between attempts.
    public var backoffTotal: Duration = .zero
    /// Breaker transitions this call caused, in order.
    public var transitions: [CircuitBreaker.Transition] = []
    public var ending: Ending = .succeeded

    public init(correlationId: String) { self.correlationId = correlationId }
}

/// One callee's resilience, composed: a circuit breaker shared by every call through the policy,
/// retries with backoff, the caller's absolute deadline and a per-attempt timeout.
///
/// For each attempt: the deadline (less `nextHopMargin`) must not have passed; the breaker must
/// admit it, or the call fails fast with `.unavailable("circuit open")` (with the earlier
/// attempt's error instead when one may have reached the callee: its outcome stays unknown); the attempt gets the
/// sooner of that deadline and `now + circuitBreaker.timeout`; its outcome is reported to the
/// breaker; on error the retry policy decides whether to wait and try again. The transport that
/// runs the attempt enforces the deadline it is given; this type only decides and waits through
/// the injected sleep, so in simulation every wait is virtual and every choice follows the seed.
///
/// What the breaker is told: an answer (value, `rejected`, `unauthenticated`) is a success;
/// `unavailable` and `overloaded` are failures; `deadlineExceeded`, or an answer at or after the
/// attempt's deadline, is a timeout when the attempt had at least `fairChanceFraction` of the
/// breaker's timeout, and is ignored when the caller's shorter deadline cut it (the callee did not
/// get a fair chance).
///
/// A single instance serves concurrent calls: the breaker sits behind a mutex that is never held
/// across a suspension point. The random source is used by whichever call is deciding, like the
/// caller's other randomness (a seeded source belongs to one executor).
public final class CallPolicy: Sendable {
    public let settings: CallPolicySettings
    /// The share of `circuitBreaker.timeout` an attempt must have been given for its lateness to
    /// count against the callee.
    public static let fairChanceFraction = 0.9
    private let clock: any ServiceClock
    private let random: any RandomSource
    private let sleep: @Sendable (Duration) async throws -> Void
    private let onCallFinished: @Sendable (CallStatistics) -> Void
    private let breaker: Mutex<CircuitBreaker>

    /// - Parameters:
    ///   - settings: must be valid (`validate()`).
    ///   - clock: where `now` is read.
    ///   - random: the source of retry jitter.
    ///   - sleep: waits the given duration of `clock` time; throws if the wait is cancelled.
    ///   - onCallFinished: receives the statistics of every call when it ends, for reports.
    public init(settings: CallPolicySettings = .seed, clock: any ServiceClock, random: any RandomSource,
                sleep: @escaping @Sendable (Duration) async throws -> Void,
                onCallFinished: @escaping @Sendable (CallStatistics) -> Void = { _ in }) {
        SettingCheck.require("call policy settings", settings.validate)
        self.settings = settings
        self.clock = clock
        self.random = random
        self.sleep = sleep
        self.onCallFinished = onCallFinished
        self.breaker = Mutex(CircuitBreaker(settings: settings.circuitBreaker))
    }

    /// A copy of the breaker as it is now, to observe its state and counts.
    public var circuitBreaker: CircuitBreaker {
        breaker.withLock { $0 }
    }

    /// Runs `attempt` under the policy and returns its first success, or throws the error that
    /// ended the call.
    ///
    /// - Parameters:
    ///   - metadata: the caller's metadata; each attempt gets a copy with its own deadline.
    ///   - isIdempotent: whether doing the call twice does it once (`RPCRequest.isIdempotent`).
    ///     With an idempotency key in `metadata`, unknown outcomes are retried either way.
    ///   - attempt: makes one attempt with the given metadata; attempts are numbered from 1.
    public func execute<T: Sendable>(
        metadata: CallMetadata, isIdempotent: Bool,
        attempt: @Sendable (CallMetadata, _ attemptNumber: Int) async throws(RPCError) -> T
    ) async throws(RPCError) -> T {
        var statistics = CallStatistics(correlationId: metadata.correlationId)
        let callDeadline = DeadlineBudget(metadata: metadata, clock: clock).forNextHop(margin: settings.nextHopMargin)
        var attemptNumber = 1
        // An earlier attempt whose outcome is unknown (it may have reached the callee and done
        // the work): a later refusal by the breaker does not make the call's outcome "not done".
        // The gateway answered 503 "circuit open" for orders whose first attempt the order
        // service took and charged (an API integrator's trial); it is the unknown outcome, 504.
        var unknownOutcome: RPCError?
        while true {
            let startedAt = clock.now
            guard startedAt < callDeadline else {
                throw finish(&statistics, error: .deadlineExceeded, reason: .deadlineExpired)
            }
            let admission = breaker.withLock { $0.admit(now: startedAt) }
            statistics.transitions += admission.transitions
            guard case .allowed(let ticket) = admission.decision else {
                statistics.breakerRejectionCount += 1
                throw finish(&statistics, error: unknownOutcome ?? .unavailable("circuit open"), reason: .circuitOpen)
            }

            let timeoutDeadline = startedAt + settings.circuitBreaker.timeout
            // The callee had a fair chance when the attempt got (nearly) the breaker's whole
            // timeout. "Nearly": a caller whose own timeout equals the breaker's computes its
            // deadline a moment before this line, which on a wall clock is a few microseconds
            // short; demanding the exact figure made real processes ignore every timeout (seen in
            // `erp run --mode zmq`; virtual time hid it, since no time passes in between).
            let isTimeoutBound = callDeadline - startedAt >= settings.circuitBreaker.timeout * Self.fairChanceFraction
            var attemptMetadata = metadata
            attemptMetadata.deadline = min(timeoutDeadline, callDeadline)
            statistics.attemptCount += 1
            let result: Result<T, RPCError>
            do throws(RPCError) {
                result = .success(try await attempt(attemptMetadata, attemptNumber))
            } catch {
                result = .failure(error)
            }

            let finishedAt = clock.now
            let outcome = Self.breakerOutcome(of: result, finishedAt: finishedAt,
                                              attemptDeadline: attemptMetadata.deadline, isTimeoutBound: isTimeoutBound)
            statistics.transitions += breaker.withLock { $0.record(outcome, ticket: ticket, now: finishedAt) }

            let attemptError: RPCError
            switch result {
            case .success(let value):
                statistics.ending = .succeeded
                onCallFinished(statistics)
                return value
            case .failure(let error):
                attemptError = error
                if error.outcomeIsUnknown { unknownOutcome = error }
            }
            let decision = settings.retry.decide(
                after: attemptError, attemptNumber: attemptNumber, isIdempotent: isIdempotent,
                hasIdempotencyKey: metadata.idempotencyKey != nil, deadline: callDeadline, now: finishedAt, random: random)
            switch decision {
            case .giveUp(let reason):
                throw finish(&statistics, error: attemptError, reason: .gaveUp(reason))
            case .retry(let delay):
                statistics.retryCount += 1
                statistics.backoffTotal += delay
                do {
                    try await sleep(delay)
                } catch {
                    // Cancelled while waiting: the caller gets the attempt's error, which says
                    // something about the callee; the cancellation does not.
                    throw finish(&statistics, error: attemptError, reason: .sleepInterrupted)
                }
                attemptNumber += 1
            }
        }
    }

    /// Runs a typed request under the policy; idempotency comes from the request's contract.
    public func execute<Request: RPCRequest>(
        _ request: Request, metadata: CallMetadata,
        send: @Sendable (Request, CallMetadata, _ attemptNumber: Int) async throws(RPCError) -> Request.Response
    ) async throws(RPCError) -> Request.Response {
        try await execute(metadata: metadata, isIdempotent: Request.isIdempotent) { attemptMetadata, attemptNumber throws(RPCError) in
            try await send(request, attemptMetadata, attemptNumber)
        }
    }

    /// What an attempt's result tells the breaker about the callee.
    static func breakerOutcome<T>(of result: Result<T, RPCError>, finishedAt: Timestamp, attemptDeadline: Timestamp,
                                  isTimeoutBound: Bool) -> CircuitBreaker.Outcome {
        let late: CircuitBreaker.Outcome = isTimeoutBound ? .timeout : .ignored
        switch result {
        case .success:
            return finishedAt >= attemptDeadline ? late : .success
        case .failure(.deadlineExceeded):
            return late
        case .failure(.unavailable), .failure(.overloaded):
            return .failure
        case .failure(.rejected), .failure(.unauthenticated):
            return finishedAt >= attemptDeadline ? late : .success
        }
    }

    private func finish(_ statistics: inout CallStatistics, error: RPCError, reason: CallStatistics.FailureReason) -> RPCError {
        statistics.ending = .failed(error, reason)
        onCallFinished(statistics)
        return error
    }
}
