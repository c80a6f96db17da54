import ERPCore

/// The settings of a `RateLimiter`: one bucket shape for every client, and a bound on clients.
public struct RateLimiterSettings: Sendable, Hashable, Codable {
    /// The bucket each client gets.
    public var bucket: TokenBucketSettings
    /// The most clients tracked at once; past it, the least recently seen is forgotten.
    public var keyCountMax: Int

    /// A limit on `keyCountMax`: eviction keeps a sorted index, and a million keys is plenty.
    public static let keyCountLimit = 1_000_000

    public init(bucket: TokenBucketSettings, keyCountMax: Int = 10_000) {
        self.bucket = bucket
        self.keyCountMax = keyCountMax
    }

    /// Throws for settings no limiter can run with, naming the setting.
    public func validate() throws(ResilienceConfigurationError) {
        try bucket.validate(path: "rateLimiter.bucket")
        try SettingCheck.within(keyCountMax, 1...Self.keyCountLimit, "rateLimiter.keyCountMax")
    }
}

/// A token bucket per client key (user id, API key, machine id), with a bounded number of keys.
///
/// Keys live in a dictionary for lookup only; nothing is decided by walking it, whose order
/// differs from process to process. Which key to forget is decided by a separate index sorted by
/// (last use, key): the least recently used goes first, ties broken by the key's text, so the
/// same calls forget the same clients in every run. A forgotten client comes back to a full
/// bucket; `keyCountMax` should exceed the number of clients active within a refill period.
public struct RateLimiter: Sendable {
    struct Entry: Sendable {
        var bucket: TokenBucket
        var lastUsed: Timestamp
    }

    /// The eviction order: a client's last use, then its key.
    struct Recency: Sendable, Hashable, Comparable {
        var lastUsed: Timestamp
        var key: String

        static func < (a: Recency, b: Recency) -> Bool {
            a.lastUsed != b.lastUsed ? a.lastUsed < b.lastUsed : a.key < b.key
        }
    }

    public let settings: RateLimiterSettings
    private var entries: [String: Entry] = [:]
    /// Sorted ascending; holds exactly one element per key in `entries`.
    private var recency: [Recency] = []
    /// How many keys were forgotten to make room.
    public private(set) var evictionCount = 0

    /// An empty limiter. The settings must be valid (`validate()`).
    public init(settings: RateLimiterSettings) {
        SettingCheck.require("rate limiter settings", settings.validate)
        self.settings = settings
    }

    /// The number of clients tracked now.
    public var keyCount: Int { entries.count }

    /// Whether `key` is tracked now (it has been seen and not forgotten).
    public func isTracked(_ key: String) -> Bool { entries[key] != nil }

    /// Takes `cost` tokens from `key`'s bucket at `now`. A refused call counts as a use too: a
    /// client that keeps knocking is not the one to forget (that would refill its bucket).
    public mutating func tryAcquire(key: String, now: Timestamp, cost: Int = 1) -> TokenBucket.Decision {
        var entry: Entry
        if let existing = entries[key] {
            entry = existing
            removeRecency(Recency(lastUsed: existing.lastUsed, key: key))
        } else {
            if entries.count >= settings.keyCountMax { evictLeastRecentlyUsed() }
            entry = Entry(bucket: TokenBucket(settings: settings.bucket, now: now), lastUsed: now)
        }
        let decision = entry.bucket.tryAcquire(now: now, cost: cost)
        entry.lastUsed = max(entry.lastUsed, now)
        entries[key] = entry
        insertRecency(Recency(lastUsed: entry.lastUsed, key: key))
        return decision
    }

    /// The key that would be forgotten next, if any.
    public var nextEvictionCandidate: String? { recency.first?.key }

    private mutating func evictLeastRecentlyUsed() {
        precondition(!recency.isEmpty, "a full limiter has keys")
        let victim = recency.removeFirst()
        entries[victim.key] = nil
        evictionCount += 1
    }

    /// The first index whose element is not less than `element` (binary search).
    private func lowerBound(_ element: Recency) -> Int {
        var low = 0
        var high = recency.count
        while low < high {
            let middle = (low + high) / 2
            if recency[middle] < element { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private mutating func insertRecency(_ element: Recency) {
        recency.insert(element, at: lowerBound(element))
    }

    private mutating func removeRecency(_ element: Recency) {
        let index = lowerBound(element)
        precondition(index < recency.count && recency[index] == element, "recency index out of step with entries")
        recency.remove(at: index)
    }
}
