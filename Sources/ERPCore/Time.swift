// ERPCore owns the domain's vocabulary: names of services, money, ids, time, randomness,
// RPC contracts and the seed's event envelope with every event type. It does no I/O.

/// A point in time, in nanoseconds since the Unix epoch. In simulation it is virtual time
/// (the world starts at a fixed epoch so runs are reproducible); in production it is wall time.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) { self.nanosecondsSinceEpoch = nanosecondsSinceEpoch }

    /// Milliseconds since the epoch: the unit of the seed's `timestamp` field.
    public var millisecondsSinceEpoch: Int64 { nanosecondsSinceEpoch / 1_000_000 }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanosecondsSinceEpoch < b.nanosecondsSinceEpoch }

    // Saturating, never trapping or wrapping: a deadline or a time read off the wire may be absurd
    // (Int64.min, a year 2262), and a sum past the range must stay at its end, not wrap to the
    // other one (a far-future deadline minus a margin must not become the distant past).
    public static func + (t: Timestamp, d: Duration) -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: saturating(t.nanosecondsSinceEpoch.addingReportingOverflow(d.nanoseconds), positive: d > .zero))
    }
    public static func - (t: Timestamp, d: Duration) -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: saturating(t.nanosecondsSinceEpoch.subtractingReportingOverflow(d.nanoseconds), positive: d < .zero))
    }
    public static func - (a: Timestamp, b: Timestamp) -> Duration {
        .nanoseconds(saturating(a.nanosecondsSinceEpoch.subtractingReportingOverflow(b.nanosecondsSinceEpoch), positive: a > b))
    }

    private static func saturating(_ result: (partialValue: Int64, overflow: Bool), positive: Bool) -> Int64 {
        result.overflow ? (positive ? .max : .min) : result.partialValue
    }

    /// The virtual epoch every simulated world starts at: 2025-01-01T00:00:00Z.
    public static let simulationEpoch = Timestamp(nanosecondsSinceEpoch: 1_735_689_600 * 1_000_000_000)

    public var description: String { "t+\(nanosecondsSinceEpoch)ns" }
}

extension Duration {
    /// Whole nanoseconds, saturating at Int64's ends (about ±292 years): a duration read from
    /// outside (a retry-after hint, a scenario) may be absurd and must not trap or wrap.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }
    public var milliseconds: Double { Double(nanoseconds) / 1_000_000 }
    public var seconds: Double { Double(nanoseconds) / 1_000_000_000 }

    /// Parses durations as written in scenarios and topology files: `250ms`, `3s`, `1.5s`, `2m`, `40us`.
    public init?(parsing text: String) {
        let trimmed = text.trimmingWhitespace()
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, nanosPerUnit) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // `ms` also ends in `s`: only accept a suffix when what precedes it is a number.
            guard let value = Double(number), value.isFinite else { continue }
            // Past about 292 years a duration does not fit in nanoseconds: refuse it, no trap.
            let nanos = (value * nanosPerUnit).rounded()
            guard nanos.magnitude < 9.2e18 else { return nil }
            self = .nanoseconds(Int64(nanos))
            return
        }
        return nil
    }

    /// Short human text: `1.5s`, `250ms`, `40us`.
    public var shortDescription: String {
        let ns = nanoseconds
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }

    /// For people: `shortDescription` where that is short, else three decimals of the largest
    /// fitting unit (`1.583s` for 1583333333ns, a fault time stretched by `--duration`), whole
    /// hours as hours. Reports only: files and traces keep `shortDescription`, which is exact.
    public var readable: String {
        let ns = nanoseconds
        if ns != 0, ns % 3_600_000_000_000 == 0 { return "\(ns / 3_600_000_000_000)h" }
        if ns % 1_000_000_000 == 0 { return shortDescription }
        let magnitude = ns.magnitude
        let (step, name): (Int64, String) = magnitude >= 1_000_000_000 ? (1_000_000, "s") : magnitude >= 1_000_000 ? (1_000, "ms") : (1, "us")
        let thousandths = Int64((Double(magnitude) / Double(step)).rounded())
        var fraction = String(thousandths % 1_000)
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return (ns < 0 ? "-" : "") + "\(thousandths / 1_000)" + (fraction.isEmpty ? "" : "." + fraction) + name
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

/// Where service code reads the time. Twins: `SystemClock` (production, wall time) and the
/// simulator's `SimClock` (virtual time, optionally skewed per node).
public protocol ServiceClock: Sendable {
    var now: Timestamp { get }
}
