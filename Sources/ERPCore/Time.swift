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

    public static func + (t: Timestamp, d: Duration) -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: t.nanosecondsSinceEpoch &+ d.nanoseconds)
    }
    public static func - (t: Timestamp, d: Duration) -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: t.nanosecondsSinceEpoch &- d.nanoseconds)
    }
    public static func - (a: Timestamp, b: Timestamp) -> Duration {
        .nanoseconds(a.nanosecondsSinceEpoch - b.nanosecondsSinceEpoch)
    }

    /// The virtual epoch every simulated world starts at: 2025-01-01T00:00:00Z.
    public static let simulationEpoch = Timestamp(nanosecondsSinceEpoch: 1_735_689_600 * 1_000_000_000)

    public var description: String { "t+\(nanosecondsSinceEpoch)ns" }
}

extension Duration {
    /// Whole nanoseconds (saturating; durations here never approach the limits).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
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
            self = .nanoseconds(Int64((value * nanosPerUnit).rounded()))
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
