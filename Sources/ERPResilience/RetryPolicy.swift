import ERPCore

/// When and after how long to try a failed call again: the seed's axios-retry (`retries: 3`,
/// `exponentialDelay`, retry on network errors, idempotent requests and 429) made safe for
/// calls that change state.
///
/// Backoff is exponential with full jitter: the wait before retry `n` (0 for the first) is drawn
/// uniformly from `[0, min(maxDelay, baseDelay · 2ⁿ)]`, so clients that failed together do not
/// come back together. A server's `retryAfter` hint is a floor on that wait.
///
/// Classification, by what the caller can know about the failed attempt:
/// - `.unavailable` and `.deadlineExceeded` leave the outcome unknown (the callee may have done
///   the work). They are retried only when doing the work twice is harmless: the request is
///   idempotent, or it carries an idempotency key the callee deduplicates on. A non-idempotent
///   call without a key is never retried after them; axios-retry would retry a POST after a
///   network error, and a second charge is worse than a failed order.
/// - `.overloaded` (the seed's 429) is a definite answer that nothing was done, so it is retried
///   whatever the request, after at least the server's hint.
/// - `.rejected` and `.unauthenticated` are answers; asking again gets the same answer.
///
/// A retry is never scheduled to start at or after the caller's deadline.
public struct RetryPolicy: Sendable, Hashable, Codable {
    /// Attempts in all, the first included: the seed's `retries: 3` is 4.
    public var attemptCountMax: Int
    /// The backoff cap of the first retry; it doubles with each retry.
    public var baseDelay: Duration
    /// The largest backoff cap, whatever the retry number.
    public var maxDelay: Duration

    /// A limit on `attemptCountMax`, so that a typo cannot make a call retry without bound.
    public static let attemptCountLimit = 100
    /// A limit on `baseDelay` and `maxDelay`: a backoff longer than this is a typo.
    public static let delayLimit: Duration = .seconds(3600)

    public init(attemptCountMax: Int = 4, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(1)) {
        self.attemptCountMax = attemptCountMax
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The seed's policy: 3 retries (4 attempts), caps of 100, 200 and 400 ms.
    public static let seed = RetryPolicy()

    /// Why a failed call is not tried again.
    public enum GiveUpReason: String, Sendable, Hashable, Codable, CaseIterable {
        /// The error is an answer (`rejected`, `unauthenticated`).
        case notRetryable
        /// The outcome is unknown and the request is neither idempotent nor keyed.
        case notIdempotent
        /// `attemptCountMax` attempts were made.
        case attemptsExhausted
        /// The wait would end at or after the caller's deadline.
        case retryWouldPassDeadline
    }

    /// What to do after a failed attempt.
    public enum Decision: Sendable, Hashable {
        /// Wait this long, then make the next attempt.
        case retry(after: Duration)
        /// Return the error to the caller.
        case giveUp(GiveUpReason)
    }

    /// Whether `error` may be retried at all, given what the request tolerates. `nil` means it
    /// may; otherwise the reason it may not.
    public func classify(_ error: RPCError, isIdempotent: Bool, hasIdempotencyKey: Bool) -> GiveUpReason? {
        switch error {
        case .overloaded:
            return nil
        case .unavailable, .deadlineExceeded:
            return isIdempotent || hasIdempotencyKey ? nil : .notIdempotent
        case .rejected, .unauthenticated:
            return .notRetryable
        }
    }

    /// The upper bound of the jittered wait before retry `retryIndex` (0 for the first retry):
    /// `min(maxDelay, baseDelay · 2^retryIndex)`, without overflow.
    public func backoffCap(retryIndex: Int) -> Duration {
        precondition(retryIndex >= 0, "retry index must not be negative")
        let base = baseDelay.nanoseconds
        let cap = maxDelay.nanoseconds
        // base · 2ⁿ ≥ cap exactly when base > cap >> n (for n < 63); past that it is always the cap.
        guard retryIndex < 63, base <= cap >> Int64(retryIndex) else { return maxDelay }
        return .nanoseconds(min(cap, base << Int64(retryIndex)))
    }

    /// The sum of the backoff caps of every retry the policy allows: the longest a call can
    /// spend waiting between attempts.
    public var backoffBudgetMax: Duration {
        var total: Int64 = 0
        for retryIndex in 0..<max(0, attemptCountMax - 1) {
            let (sum, overflow) = total.addingReportingOverflow(backoffCap(retryIndex: retryIndex).nanoseconds)
            if overflow { return .nanoseconds(Int64.max) }
            total = sum
        }
        return .nanoseconds(total)
    }

    /// Decides what follows the failure of attempt `attemptNumber` (1 for the first) with
    /// `error`, at `now`, for a call that must be over by `deadline`.
    public func decide(after error: RPCError, attemptNumber: Int, isIdempotent: Bool, hasIdempotencyKey: Bool,
                       deadline: Timestamp, now: Timestamp, random: any RandomSource) -> Decision {
        precondition(attemptNumber >= 1, "attempts are numbered from 1")
        if let reason = classify(error, isIdempotent: isIdempotent, hasIdempotencyKey: hasIdempotencyKey) {
            return .giveUp(reason)
        }
        guard attemptNumber < attemptCountMax else { return .giveUp(.attemptsExhausted) }
        var delay = jitteredDelay(retryIndex: attemptNumber - 1, random: random)
        if case .overloaded(let retryAfterMilliseconds?) = error, retryAfterMilliseconds > 0 {
            delay = max(delay, .milliseconds(retryAfterMilliseconds))
        }
        // Compared as durations: a huge hint cannot wrap around the way a timestamp sum could.
        guard delay < deadline - now else { return .giveUp(.retryWouldPassDeadline) }
        return .retry(after: delay)
    }

    /// A wait drawn uniformly from `[0, backoffCap(retryIndex:)]` (full jitter).
    public func jitteredDelay(retryIndex: Int, random: any RandomSource) -> Duration {
        let cap = backoffCap(retryIndex: retryIndex).nanoseconds
        let drawn = Int64(random.uniform(0, Double(cap)))
        return .nanoseconds(min(max(drawn, 0), cap))
    }

    /// Throws for settings no policy can run with, naming the setting.
    public func validate() throws(ResilienceConfigurationError) {
        try validate(path: "retry")
    }

    /// Also throws when the retries alone could outlast `deadline`, the budget a call gets:
    /// a policy that plans waits the deadline cannot hold only ever gives up late.
    public func validate(against deadline: Duration) throws(ResilienceConfigurationError) {
        try validate(path: "retry", against: deadline)
    }

    func validate(path: String) throws(ResilienceConfigurationError) {
        try SettingCheck.within(attemptCountMax, 1...Self.attemptCountLimit, path + ".attemptCountMax")
        try SettingCheck.positive(baseDelay, path + ".baseDelay")
        try SettingCheck.atMost(baseDelay, Self.delayLimit, path + ".baseDelay")
        try SettingCheck.positive(maxDelay, path + ".maxDelay")
        try SettingCheck.atMost(maxDelay, Self.delayLimit, path + ".maxDelay")
        guard maxDelay >= baseDelay else {
            throw ResilienceConfigurationError(
                setting: path + ".maxDelay", requirement: "must not be shorter than \(path).baseDelay (\(baseDelay.shortDescription))",
                actual: maxDelay.shortDescription)
        }
    }

    func validate(path: String, against deadline: Duration) throws(ResilienceConfigurationError) {
        try validate(path: path)
        try SettingCheck.positive(deadline, "deadline")
        let budget = backoffBudgetMax
        guard budget <= deadline else {
            throw ResilienceConfigurationError(
                setting: path + ".attemptCountMax",
                requirement: "with baseDelay \(baseDelay.shortDescription) and maxDelay \(maxDelay.shortDescription) "
                    + "must keep the retry budget (sum of maximum backoffs, \(budget.shortDescription)) "
                    + "within the deadline \(deadline.shortDescription)",
                actual: "\(attemptCountMax)")
        }
    }
}
