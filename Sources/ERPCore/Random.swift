/// Where service code gets randomness. Twins: `SystemRandomSource` (production) and
/// `SeededRandomSource` (simulation and tests: the same seed gives the same sequence in any process).
public protocol RandomSource: AnyObject, Sendable {
    func nextUInt64() -> UInt64
}

extension RandomSource {
    /// Uniform in [0, 1).
    @inlinable public func unit() -> Double { Double(nextUInt64() >> 11) * 0x1.0p-53 }
    /// Uniform in [lower, upper).
    @inlinable public func uniform(_ lower: Double, _ upper: Double) -> Double { lower + (upper - lower) * unit() }
    /// True with probability `p`.
    @inlinable public func chance(_ p: Double) -> Bool { p > 0 && unit() < p }
    /// Uniform integer in the closed range (Lemire's multiply-shift; bias is negligible for our ranges).
    @inlinable public func int(in range: ClosedRange<Int>) -> Int {
        let width = UInt64(range.upperBound - range.lowerBound) &+ 1
        if width == 0 { return Int(truncatingIfNeeded: nextUInt64()) }
        let product = nextUInt64().multipliedFullWidth(by: width)
        return range.lowerBound + Int(product.high)
    }
    /// An exponentially distributed value with the given mean (Poisson inter-arrival times).
    @inlinable public func exponential(mean: Double) -> Double {
        let u = 1.0 - unit() // (0, 1]
        return -mean * _log(u)
    }
    /// Picks one element; the collection must not be empty.
    @inlinable public func pick<C: RandomAccessCollection>(_ c: C) -> C.Element where C.Index == Int {
        precondition(!c.isEmpty, "pick from an empty collection")
        return c[c.startIndex + int(in: 0...(c.count - 1))]
    }
    /// Capped exponential backoff with full jitter: uniform in [0, min(maximum, initial × 2^attempt)).
    /// The one backoff of the services, the outbox relay and the bus.
    public func fullJitterBackoff(attempt: Int, initial: Duration, max maximum: Duration) -> Duration {
        let cap = min(maximum.nanoseconds, initial.nanoseconds << Swift.min(attempt, 30))
        return .nanoseconds(Int64(uniform(0, Double(Swift.max(cap, 1)))))
    }

    /// Lowercase hex of `byteCount` random bytes.
    public func hex(byteCount: Int) -> String {
        var out = ""
        out.reserveCapacity(byteCount * 2)
        var remaining = byteCount
        while remaining > 0 {
            var word = nextUInt64()
            for _ in 0..<min(8, remaining) {
                let byte = UInt8(truncatingIfNeeded: word)
                word >>= 8
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            }
            remaining -= 8
        }
        return out
    }
}

private let hexDigits: [Character] = Array("0123456789abcdef")

@usableFromInline func _log(_ x: Double) -> Double {
    // Natural logarithm without Foundation (ERPCore stays dependency-free).
    // log(x) = 2 * atanh((x-1)/(x+1)), after range reduction by powers of two.
    guard x > 0 else { return -.infinity }
    var m = x
    var exponent = 0
    while m > 2 { m /= 2; exponent += 1 }
    while m < 1 { m *= 2; exponent -= 1 }
    let y = (m - 1) / (m + 1)
    let y2 = y * y
    var term = y
    var sum = 0.0
    var k = 1.0
    while true {
        let next = sum + term / k
        if next == sum { break }
        sum = next
        term *= y2
        k += 2
    }
    return 2 * sum + Double(exponent) * 0.6931471805599453
}

/// SplitMix64: used to derive independent sub-seeds from one seed.
@inlinable public func splitMix64(_ state: inout UInt64) -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// FNV-1a over UTF-8: a hash that is the same in every process (Swift's `Hasher` is seeded
/// per process and must never decide anything in a simulation).
public func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return h
}

/// xoshiro256** seeded through SplitMix64. Not thread-safe: a simulated world runs on one thread,
/// and each stream belongs to one node or one purpose.
public final class SeededRandomSource: RandomSource, @unchecked Sendable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        var sm = seed
        s0 = splitMix64(&sm); s1 = splitMix64(&sm); s2 = splitMix64(&sm); s3 = splitMix64(&sm)
    }

    /// An independent stream for `label`, derived from this stream's seed (not its position), so
    /// adding a consumer of randomness somewhere does not shift every other stream.
    public func derived(_ label: String) -> SeededRandomSource {
        var sm = seed ^ stableHash(label)
        return SeededRandomSource(seed: splitMix64(&sm))
    }

    @inlinable public func nextUInt64() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }
}

/// Production randomness from the operating system.
public final class SystemRandomSource: RandomSource, @unchecked Sendable {
    public init() {}
    public func nextUInt64() -> UInt64 {
        var g = SystemRandomNumberGenerator()  // determinism-exempt: production's source; a simulated runtime has a seeded one
        return g.next()
    }
}

/// Makes ids such as `order_3f9c2a…`. Ids come from the runtime's random source so that a
/// simulated run names everything the same way every time, and a restarted service never
/// reissues an id (a counter would restart at zero after a crash).
public struct IDGenerator: Sendable {
    public let random: any RandomSource
    public init(random: any RandomSource) { self.random = random }
    public func next(_ prefix: String) -> String { prefix + "_" + random.hex(byteCount: 8) }
}
