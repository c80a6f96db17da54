import ERPCore
import ERPResilience
import Testing

@Suite("Token bucket")
struct TokenBucketTests {
    @Test func fullBucketAllowsABurstOfCapacityThenOneTokenPerInterval() {
        var bucket = TokenBucket(settings: TokenBucketSettings(capacity: 3, refillRatePerSecond: 2), now: epoch)
        #expect(bucket.availableTokens(now: epoch) == 3)
        for _ in 0..<3 { #expect(bucket.tryAcquire(now: epoch) == .allowed) }
        #expect(bucket.tryAcquire(now: epoch) == .limited(retryAfter: .milliseconds(500)))
        #expect(bucket.tryAcquire(now: epoch + .milliseconds(499)) == .limited(retryAfter: .milliseconds(1)))
        #expect(bucket.tryAcquire(now: epoch + .milliseconds(500)) == .allowed)
        #expect(bucket.availableTokens(now: epoch + .seconds(10)) == 3, "refill stops at capacity")
    }

    @Test func costTakesSeveralTokens() {
        var bucket = TokenBucket(settings: TokenBucketSettings(capacity: 5, refillRatePerSecond: 1), now: epoch)
        #expect(bucket.tryAcquire(now: epoch, cost: 4) == .allowed)
        #expect(bucket.tryAcquire(now: epoch, cost: 2) == .limited(retryAfter: .seconds(1)))
        #expect(bucket.tryAcquire(now: epoch, cost: 1) == .allowed)
    }

    /// Law: from creation to any instant, and between any two grants, the bucket hands out at
    /// most `capacity + rate · elapsed` tokens; and a refused request succeeds exactly when its
    /// `retryAfter` has passed.
    @Test func neverAllowsMoreThanCapacityPlusRateTimesElapsed() {
        var limitedCount = 0
        for seed in propertySeeds.prefix(150) {
            let random = SeededRandomSource(seed: seed)
            let capacity = random.int(in: 1...20)
            let rate = random.pick([0.5, 1, 3, 7.3, 10, 100, 1000])
            var bucket = TokenBucket(settings: TokenBucketSettings(capacity: capacity, refillRatePerSecond: rate), now: epoch)
            var now = epoch
            var grants: [(at: Timestamp, tokens: Int)] = []
            var grantedTotal = 0
            for _ in 0..<300 {
                // Arrivals about twice as fast as the refill, so the bucket is often empty.
                now = now + .nanoseconds(Int64(random.exponential(mean: 0.5e9 / rate)))
                let cost = random.int(in: 1...min(3, capacity))
                var copy = bucket
                switch bucket.tryAcquire(now: now, cost: cost) {
                case .allowed:
                    grants.append((now, cost))
                    grantedTotal += cost
                case .limited(let retryAfter):
                    limitedCount += 1
                    #expect(retryAfter > .zero, "seed \(seed)")
                    var justBefore = copy
                    if retryAfter > .nanoseconds(1) {
                        #expect(!justBefore.tryAcquire(now: now + retryAfter - .nanoseconds(1), cost: cost).isAllowed,
                                "seed \(seed): allowed before retryAfter")
                    }
                    #expect(copy.tryAcquire(now: now + retryAfter, cost: cost) == .allowed, "seed \(seed): refused at retryAfter")
                }
                let bound = Double(capacity) + rate * (now - epoch).seconds
                #expect(Double(grantedTotal) <= bound + 1e-9,
                        "seed \(seed): \(grantedTotal) tokens granted by \((now - epoch).shortDescription), bound \(bound)")
            }
            // Every window between two grants, via prefix sums.
            var prefix = [0]
            for grant in grants { prefix.append(prefix.last! + grant.tokens) }
            for first in grants.indices {
                for last in first..<grants.count {
                    let tokens = prefix[last + 1] - prefix[first]
                    let bound = Double(capacity) + rate * (grants[last].at - grants[first].at).seconds
                    if Double(tokens) > bound + 1e-9 {
                        Issue.record("seed \(seed): \(tokens) tokens between grants \(first) and \(last), bound \(bound)")
                    }
                }
            }
        }
        #expect(limitedCount > 1000, "the law is only tested if the bucket runs dry")
    }
}
