import ERPCore

/// The settings of a `CircuitBreaker`, named as opossum names its options. The defaults are the
/// seed's (`timeout: 3000, errorThresholdPercentage: 50, resetTimeout: 30000`), opossum's own
/// rolling window (10 s in 10 buckets), and a volume threshold of 5 where opossum has none.
public struct CircuitBreakerSettings: Sendable, Hashable, Codable {
    /// How long one call may take before it counts as a timeout (a failure). `CallPolicy` also
    /// shortens every attempt's deadline to this, and a half-open trial that outlives it is lost.
    public var timeout: Duration
    /// The failure percentage in the rolling window at or above which the circuit opens.
    public var errorThresholdPercentage: Double
    /// How long the circuit stays open before it lets one trial call through (half-open).
    public var resetTimeout: Duration
    /// The length of the rolling window the error percentage is computed over.
    public var rollingCountTimeout: Duration
    /// How many buckets the window is split in: the window forgets a bucket at a time.
    public var rollingCountBuckets: Int
    /// The number of calls the window must hold before the circuit may open: two failures out of
    /// three calls at start-up say little about a service.
    public var volumeThreshold: Int

    /// A limit on the bucket count, so that a typo cannot make the window allocate without bound.
    public static let rollingCountBucketsMax = 1_000
    /// A limit on every duration here: a breaker that waits longer than a day is a typo.
    public static let durationLimit: Duration = .seconds(86_400)

    public init(timeout: Duration = .seconds(3), errorThresholdPercentage: Double = 50,
                resetTimeout: Duration = .seconds(30), rollingCountTimeout: Duration = .seconds(10),
                rollingCountBuckets: Int = 10, volumeThreshold: Int = 5) {
        self.timeout = timeout
        self.errorThresholdPercentage = errorThresholdPercentage
        self.resetTimeout = resetTimeout
        self.rollingCountTimeout = rollingCountTimeout
        self.rollingCountBuckets = rollingCountBuckets
        self.volumeThreshold = volumeThreshold
    }

    /// The seed's breaker: 3 s timeout, 50 %, 30 s reset.
    public static let seed = CircuitBreakerSettings()

    /// Throws for settings no breaker can run with, naming the setting.
    public func validate() throws(ResilienceConfigurationError) {
        try validate(path: "circuitBreaker")
    }

    func validate(path: String) throws(ResilienceConfigurationError) {
        try SettingCheck.positive(timeout, path + ".timeout")
        try SettingCheck.atMost(timeout, Self.durationLimit, path + ".timeout")
        try SettingCheck.within(errorThresholdPercentage, 0...100, path + ".errorThresholdPercentage")
        try SettingCheck.positive(resetTimeout, path + ".resetTimeout")
        try SettingCheck.atMost(resetTimeout, Self.durationLimit, path + ".resetTimeout")
        try SettingCheck.positive(rollingCountTimeout, path + ".rollingCountTimeout")
        try SettingCheck.atMost(rollingCountTimeout, Self.durationLimit, path + ".rollingCountTimeout")
        try SettingCheck.within(rollingCountBuckets, 1...Self.rollingCountBucketsMax, path + ".rollingCountBuckets")
        // Buckets of equal whole-nanosecond length keep bucket boundaries exact.
        guard rollingCountTimeout.nanoseconds % Int64(rollingCountBuckets) == 0 else {
            throw ResilienceConfigurationError(
                setting: path + ".rollingCountBuckets",
                requirement: "must divide \(path).rollingCountTimeout (\(rollingCountTimeout.shortDescription)) evenly",
                actual: "\(rollingCountBuckets)")
        }
        try SettingCheck.within(volumeThreshold, 0...Int(Int32.max), path + ".volumeThreshold")
    }
}

/// An opossum-style circuit breaker as a plain state machine: it decides, the caller does.
///
/// `admit(now:)` says whether a call may go out and hands back a ticket; the caller makes the call
/// and reports what happened with `record(_:ticket:now:)`. Both return every transition they
/// cause (`open`, `halfOpen`, `close`), so callers can trace and count them. The breaker reads no
/// clock: time is the `now` it is given. A value type, so it has no sharing rules of its own; the
/// owner keeps it where its calls are serialised (`CallPolicy` keeps it behind a mutex).
///
/// States: `closed` admits every call and counts outcomes in a rolling window of buckets; when a
/// failure leaves the window with at least `volumeThreshold` calls of which at least
/// `errorThresholdPercentage` percent failed or timed out, it opens. `open` rejects every call
/// until `resetTimeout` has passed, then turns `halfOpen`, which admits exactly one trial call
/// and rejects the others: the trial's success closes the circuit, its failure or timeout opens
/// it again. A trial not reported within `timeout` counts as timed out.
///
/// Where it differs from opossum, on purpose: the threshold is reached at the percentage, not
/// strictly above it; rejected calls do not count towards the volume or the percentage (opossum
/// divides by every `fire`, rejections included); the window starts empty when the circuit
/// closes, so failures that opened it cannot open it again; outcomes of calls admitted before
/// the circuit last left `closed` are dropped, because they describe the service before its
/// recovery was proven.
public struct CircuitBreaker: Sendable, Hashable {
    /// Where the circuit is.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        case closed, open, halfOpen
    }

    /// What a call admitted by a ticket ended with, as far as the breaker cares.
    public enum Outcome: String, Sendable, Hashable, Codable, CaseIterable {
        /// The callee answered (an application `rejected` answer is an answer too).
        case success
        /// The callee could not be reached or shed the call.
        case failure
        /// The call outlived the breaker's `timeout`.
        case timeout
        /// The outcome says nothing about the callee (the caller's own deadline was too short).
        /// It is not counted; a half-open trial that ends so frees the trial slot.
        case ignored
    }

    /// The permission to make one call; give it back with `record`.
    public struct Ticket: Sendable, Hashable {
        /// Unique per breaker, in admission order.
        public let serial: UInt64
        /// True for the one call a half-open circuit lets through.
        public let isTrial: Bool
        /// When the call was admitted.
        public let admittedAt: Timestamp
        /// Which closed period admitted it; outcomes from earlier periods are dropped.
        let closedPeriod: UInt64
    }

    /// A change of state, as opossum's events name it.
    public struct Transition: Sendable, Hashable, CustomStringConvertible {
        /// opossum's event names.
        public enum Event: String, Sendable, Hashable, Codable, CaseIterable {
            case open, halfOpen, close
        }
        public let from: State
        public let to: State
        public let at: Timestamp

        public var event: Event {
            switch to {
            case .open: .open
            case .halfOpen: .halfOpen
            case .closed: .close
            }
        }

        public var description: String { "\(event.rawValue) (\(from.rawValue) → \(to.rawValue)) at \(at)" }
    }

    /// The answer of `admit(now:)`: the decision and the transitions that reaching it caused.
    public struct Admission: Sendable, Hashable {
        public enum Decision: Sendable, Hashable {
            /// Make the call, then `record` its outcome with this ticket.
            case allowed(Ticket)
            /// Fail fast; nothing can change before `retryAfter` has passed.
            case rejected(retryAfter: Duration)
        }
        public var decision: Decision
        /// Time-driven transitions found on the way (`halfOpen` after `resetTimeout`, `open` after
        /// a lost trial).
        public var transitions: [Transition]

        public var isAllowed: Bool {
            if case .allowed = decision { return true }
            return false
        }
    }

    /// Outcome counts, over the rolling window or since creation.
    public struct Counts: Sendable, Hashable, Codable {
        public var successes = 0
        public var failures = 0
        public var timeouts = 0
        /// Calls the breaker refused (not part of `calls`).
        public var rejections = 0

        public init() {}

        /// Calls that were made and counted: what `volumeThreshold` is compared with.
        public var calls: Int { successes + failures + timeouts }
        /// Failed and timed-out calls as a percentage of `calls`; zero without calls.
        public var failurePercentage: Double {
            calls == 0 ? 0 : Double(failures + timeouts) * 100 / Double(calls)
        }

        mutating func add(_ outcome: Outcome) {
            switch outcome {
            case .success: successes += 1
            case .failure: failures += 1
            case .timeout: timeouts += 1
            case .ignored: break
            }
        }

        mutating func add(_ other: Counts) {
            successes += other.successes
            failures += other.failures
            timeouts += other.timeouts
            rejections += other.rejections
        }
    }

    /// One slice of the rolling window. `number` is the bucket's index since the epoch, so a slot
    /// whose number is old holds nothing current.
    struct Bucket: Sendable, Hashable {
        var number: Int64
        var counts = Counts()
    }

    public let settings: CircuitBreakerSettings
    /// The state as of the last call to `admit`, `record` or `advance`. Time alone does not move
    /// it: call `advance(now:)` to apply `resetTimeout` before reading it.
    public private(set) var state: State = .closed
    /// Counts since the breaker was made, never forgotten (rejections included).
    public private(set) var totals = Counts()
    /// How many transitions happened since the breaker was made.
    public private(set) var transitionCount = 0

    private var buckets: [Bucket]
    private let bucketLengthNanoseconds: Int64
    private var openedAt = Timestamp(nanosecondsSinceEpoch: 0)
    private var trial: Ticket?
    private var closedPeriod: UInt64 = 0
    private var nextSerial: UInt64 = 0
    /// The latest time seen: a clock that steps back is taken as standing still, so the window
    /// and the reset timer never run backwards.
    private var latest = Timestamp(nanosecondsSinceEpoch: .min)

    /// A closed breaker with an empty window. The settings must be valid (`validate()`); loading
    /// code validates, so invalid settings here are a programming error.
    public init(settings: CircuitBreakerSettings = .seed) {
        SettingCheck.require("circuit breaker settings", settings.validate)
        self.settings = settings
        self.bucketLengthNanoseconds = settings.rollingCountTimeout.nanoseconds / Int64(settings.rollingCountBuckets)
        self.buckets = Array(repeating: Bucket(number: .min), count: settings.rollingCountBuckets)
    }

    // MARK: Deciding

    /// Whether a call may go out at `now`. Applies time-driven transitions first.
    public mutating func admit(now: Timestamp) -> Admission {
        let now = observe(now)
        let transitions = advanceObserved(now)
        switch state {
        case .closed:
            return Admission(decision: .allowed(issueTicket(now: now, isTrial: false)), transitions: transitions)
        case .open:
            countRejection(now: now)
            return Admission(decision: .rejected(retryAfter: openedAt + settings.resetTimeout - now), transitions: transitions)
        case .halfOpen:
            if let trial {
                // The one trial is out; the soonest anything changes is when its time is up.
                countRejection(now: now)
                return Admission(decision: .rejected(retryAfter: trial.admittedAt + settings.timeout - now),
                                 transitions: transitions)
            }
            let ticket = issueTicket(now: now, isTrial: true)
            trial = ticket
            return Admission(decision: .allowed(ticket), transitions: transitions)
        }
    }

    /// Reports how the call admitted by `ticket` ended, at `now`, and returns the transitions it
    /// caused. Outcomes of stale tickets (a trial already given up on, a call admitted before
    /// the circuit last left `closed`) change nothing.
    @discardableResult
    public mutating func record(_ outcome: Outcome, ticket: Ticket, now: Timestamp) -> [Transition] {
        precondition(ticket.serial < nextSerial, "ticket \(ticket.serial) was not issued by this breaker")
        let now = observe(now)
        var transitions = advanceObserved(now)
        if ticket.isTrial {
            guard state == .halfOpen, trial?.serial == ticket.serial else { return transitions }
            trial = nil
            totals.add(outcome)
            switch outcome {
            case .success: transitions.append(close(now: now))
            case .failure, .timeout: transitions.append(open(now: now))
            case .ignored: break
            }
            return transitions
        }
        guard state == .closed, ticket.closedPeriod == closedPeriod else { return transitions }
        totals.add(outcome)
        withCurrentBucket(now: now) { $0.counts.add(outcome) }
        if outcome == .failure || outcome == .timeout {
            let window = windowCounts(now: now)
            if window.calls >= settings.volumeThreshold,
               window.failurePercentage >= settings.errorThresholdPercentage {
                transitions.append(open(now: now))
            }
        }
        return transitions
    }

    /// Applies the transitions time alone causes by `now`: `open → halfOpen` once `resetTimeout`
    /// has passed, and `halfOpen → open` when the trial outlived `timeout` unreported.
    @discardableResult
    public mutating func advance(now: Timestamp) -> [Transition] {
        advanceObserved(observe(now))
    }

    // MARK: Observing

    /// The counts in the rolling window that ends at `now`.
    public func rollingCounts(now: Timestamp) -> Counts {
        windowCounts(now: max(now, latest))
    }

    /// The trial ticket a half-open circuit has let out, if any.
    public var outstandingTrial: Ticket? { trial }

    /// When the circuit last opened; meaningful while it is open or half-open.
    public var lastOpenedAt: Timestamp? { state == .closed ? nil : openedAt }

    // MARK: Internals

    private mutating func observe(_ now: Timestamp) -> Timestamp {
        latest = max(latest, now)
        return latest
    }

    private mutating func advanceObserved(_ now: Timestamp) -> [Transition] {
        var transitions: [Transition] = []
        // `open → halfOpen` may be followed by nothing else in the same step (the new trial slot
        // is empty); a lost trial reopens at `now`, so the reset timer cannot also have run out.
        // The loop therefore makes at most two passes.
        while true {
            switch state {
            case .closed:
                return transitions
            case .open:
                guard now >= openedAt + settings.resetTimeout else { return transitions }
                transitions.append(move(to: .halfOpen, now: now))
            case .halfOpen:
                guard let trial, now >= trial.admittedAt + settings.timeout else { return transitions }
                self.trial = nil
                totals.timeouts += 1
                transitions.append(open(now: now))
                return transitions
            }
        }
    }

    private mutating func open(now: Timestamp) -> Transition {
        openedAt = now
        trial = nil
        return move(to: .open, now: now)
    }

    private mutating func close(now: Timestamp) -> Transition {
        // A new closed period: the window starts empty and older tickets no longer count.
        closedPeriod += 1
        for index in buckets.indices { buckets[index] = Bucket(number: .min) }
        return move(to: .closed, now: now)
    }

    private mutating func move(to next: State, now: Timestamp) -> Transition {
        precondition(next != state, "a transition must change the state")
        let transition = Transition(from: state, to: next, at: now)
        state = next
        transitionCount += 1
        return transition
    }

    private mutating func issueTicket(now: Timestamp, isTrial: Bool) -> Ticket {
        defer { nextSerial += 1 }
        return Ticket(serial: nextSerial, isTrial: isTrial, admittedAt: now, closedPeriod: closedPeriod)
    }

    private mutating func countRejection(now: Timestamp) {
        totals.rejections += 1
        withCurrentBucket(now: now) { $0.counts.rejections += 1 }
    }

    private func bucketNumber(_ now: Timestamp) -> Int64 {
        let ns = now.nanosecondsSinceEpoch
        let quotient = ns / bucketLengthNanoseconds
        return ns % bucketLengthNanoseconds < 0 ? quotient - 1 : quotient
    }

    private func slot(_ number: Int64) -> Int {
        let count = Int64(buckets.count)
        return Int(((number % count) + count) % count)
    }

    private mutating func withCurrentBucket(now: Timestamp, _ update: (inout Bucket) -> Void) {
        let number = bucketNumber(now)
        let index = slot(number)
        if buckets[index].number != number { buckets[index] = Bucket(number: number) }
        update(&buckets[index])
    }

    private func windowCounts(now: Timestamp) -> Counts {
        let current = bucketNumber(now)
        let oldest = current - Int64(buckets.count) + 1
        var counts = Counts()
        for bucket in buckets where bucket.number >= oldest && bucket.number <= current {
            counts.add(bucket.counts)
        }
        return counts
    }
}
