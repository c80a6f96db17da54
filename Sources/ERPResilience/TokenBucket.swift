import ERPCore

/// The settings of a `TokenBucket`: how many calls may come at once, and how fast the allowance
/// comes back.
public struct TokenBucketSettings: Sendable, Hashable, Codable {
    /// The burst: calls a full bucket allows with no time passing.
    public var capacity: Int
    /// Tokens added per second of clock time, up to `capacity`.
    public var refillRatePerSecond: Double

    /// Limits, so that the exact integer arithmetic of the bucket cannot overflow.
    public static let capacityMax = 1_000_000
    public static let refillRatePerSecondRange: ClosedRange<Double> = 0.001...1_000_000_000

    public init(capacity: Int, refillRatePerSecond: Double) {
        self.capacity = capacity
        self.refillRatePerSecond = refillRatePerSecond
    }

    /// Throws for settings no bucket can run with, naming the setting.
    public func validate() throws(ResilienceConfigurationError) {
        try validate(path: "tokenBucket")
    }

    func validate(path: String) throws(ResilienceConfigurationError) {
        try SettingCheck.within(capacity, 1...Self.capacityMax, path + ".capacity")
        try SettingCheck.within(refillRatePerSecond, Self.refillRatePerSecondRange, path + ".refillRatePerSecond")
    }

    /// Clock time per token, rounded up to a whole nanosecond so the bucket never refills faster
    /// than the stated rate.
    var emissionIntervalNanoseconds: Int64 {
        max(1, Int64((1_000_000_000 / refillRatePerSecond).rounded(.up)))
    }
}

/// A token-bucket rate limiter on an injected clock. It reads no clock: time is the `now` it is
/// given.
///
/// Kept as the generic cell rate algorithm (the time at which the bucket would be full again)
/// in whole nanoseconds, so it is exact: from creation at `t₀` to any `t`, it allows at most
/// `capacity + refillRatePerSecond · (t − t₀)` tokens, with no floating-point drift. A clock that
/// steps back only makes it stricter.
public struct TokenBucket: Sendable, Hashable {
    /// The answer to one request for tokens.
    public enum Decision: Sendable, Hashable {
        case allowed
        /// Refused; the same request is allowed once `retryAfter` has passed (if nobody else
        /// takes tokens meanwhile). The seed's 429 with its `Retry-After`.
        case limited(retryAfter: Duration)

        public var isAllowed: Bool { self == .allowed }
    }

    public let settings: TokenBucketSettings
    private let emissionInterval: Int64
    /// When the bucket would be full again: `capacity` tokens are owed until then.
    private var fullAt: Timestamp

    /// A full bucket at `now`. The settings must be valid (`validate()`).
    public init(settings: TokenBucketSettings, now: Timestamp) {
        SettingCheck.require("token bucket settings", settings.validate)
        self.settings = settings
        self.emissionInterval = settings.emissionIntervalNanoseconds
        self.fullAt = now
    }

    /// Takes `cost` tokens at `now` if the bucket holds them.
    public mutating func tryAcquire(now: Timestamp, cost: Int = 1) -> Decision {
        precondition((1...settings.capacity).contains(cost), "cost \(cost) must be within 1...capacity")
        let start = max(fullAt, now).nanosecondsSinceEpoch
        let newFullAt = start + Int64(cost) * emissionInterval
        let burst = Int64(settings.capacity) * emissionInterval
        let owed = newFullAt - now.nanosecondsSinceEpoch
        guard owed <= burst else { return .limited(retryAfter: .nanoseconds(owed - burst)) }
        fullAt = Timestamp(nanosecondsSinceEpoch: newFullAt)
        return .allowed
    }

    /// Whole tokens the bucket holds at `now`.
    public func availableTokens(now: Timestamp) -> Int {
        let owed = max(fullAt, now).nanosecondsSinceEpoch - now.nanosecondsSinceEpoch
        let burst = Int64(settings.capacity) * emissionInterval
        return Int((burst - owed) / emissionInterval)
    }
}
