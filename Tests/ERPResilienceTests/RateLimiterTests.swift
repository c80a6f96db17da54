import ERPCore
import ERPResilience
import Testing

@Suite("Rate limiter")
struct RateLimiterTests {
    static let oneCallPerSecond = TokenBucketSettings(capacity: 1, refillRatePerSecond: 1)

    @Test func clientsHaveSeparateBuckets() {
        var limiter = RateLimiter(settings: RateLimiterSettings(bucket: Self.oneCallPerSecond))
        #expect(limiter.tryAcquire(key: "alice", now: epoch) == .allowed)
        #expect(limiter.tryAcquire(key: "alice", now: epoch) == .limited(retryAfter: .seconds(1)))
        #expect(limiter.tryAcquire(key: "bob", now: epoch) == .allowed)
    }

    @Test func evictsLeastRecentlyUsedWithTiesBrokenByKey() {
        var limiter = RateLimiter(settings: RateLimiterSettings(bucket: Self.oneCallPerSecond, keyCountMax: 2))
        _ = limiter.tryAcquire(key: "b", now: epoch)
        _ = limiter.tryAcquire(key: "a", now: epoch)
        #expect(limiter.nextEvictionCandidate == "a")
        _ = limiter.tryAcquire(key: "c", now: epoch + .seconds(1))
        #expect(!limiter.isTracked("a"))
        #expect(limiter.isTracked("b") && limiter.isTracked("c"))
        #expect(limiter.keyCount == 2)
        #expect(limiter.evictionCount == 1)
    }

    @Test func aRefusedClientCountsAsRecentlyUsed() {
        var limiter = RateLimiter(settings: RateLimiterSettings(bucket: Self.oneCallPerSecond, keyCountMax: 2))
        _ = limiter.tryAcquire(key: "flooder", now: epoch)
        _ = limiter.tryAcquire(key: "quiet", now: epoch + .milliseconds(1))
        #expect(!limiter.tryAcquire(key: "flooder", now: epoch + .milliseconds(2)).isAllowed)
        _ = limiter.tryAcquire(key: "newcomer", now: epoch + .milliseconds(3))
        #expect(limiter.isTracked("flooder"), "forgetting the flooder would refill its bucket")
        #expect(!limiter.isTracked("quiet"))
        #expect(!limiter.tryAcquire(key: "flooder", now: epoch + .milliseconds(4)).isAllowed)
    }

    /// Against a reference model: one bucket per tracked key, forgotten in (last use, key) order.
    @Test func matchesAReferenceModelAndStaysBounded() {
        var evictions = 0
        for seed in propertySeeds.prefix(100) {
            let random = SeededRandomSource(seed: seed)
            let keyCountMax = random.int(in: 1...6)
            let bucketSettings = TokenBucketSettings(capacity: random.int(in: 1...3), refillRatePerSecond: 2)
            var limiter = RateLimiter(settings: RateLimiterSettings(bucket: bucketSettings, keyCountMax: keyCountMax))
            var model: [String: (bucket: TokenBucket, lastUsed: Timestamp)] = [:]
            var now = epoch
            for _ in 0..<300 {
                now = now + .milliseconds(random.int(in: 0...300))
                let key = "client-\(random.int(in: 0...9))"
                if model[key] == nil, model.count >= keyCountMax {
                    let victim = model.min { $0.value.lastUsed != $1.value.lastUsed ? $0.value.lastUsed < $1.value.lastUsed : $0.key < $1.key }!.key
                    #expect(limiter.nextEvictionCandidate == victim, "seed \(seed)")
                    model[victim] = nil
                    evictions += 1
                }
                var entry = model[key] ?? (TokenBucket(settings: bucketSettings, now: now), now)
                let expected = entry.bucket.tryAcquire(now: now)
                entry.lastUsed = now
                model[key] = entry
                #expect(limiter.tryAcquire(key: key, now: now) == expected, "seed \(seed): \(key) at \(now - epoch)")
                #expect(limiter.keyCount == model.count && limiter.keyCount <= keyCountMax, "seed \(seed)")
            }
            for index in 0...9 {
                #expect(limiter.isTracked("client-\(index)") == (model["client-\(index)"] != nil), "seed \(seed)")
            }
        }
        #expect(evictions > 1000)
    }
}
