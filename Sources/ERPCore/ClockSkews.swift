/// The clock offsets a run gave its nodes, as they changed, for turning a node's clock readings
/// back into true time (milliseconds since the epoch). The checker times an event hop from the
/// producer's timestamp to the consumer's commit, each read on its own node's clock; under a
/// clock-skew fault the hop then measured the skew, not the delay (a report reader's trial:
/// hops of 5 ms reported as 0 ms, the negative ones clamped, and of 7 ms as 806 ms).
public struct ClockSkews: Sendable, Hashable {
    /// From `atMilliseconds` (true time) on, `node`'s clock reads true time plus `skewMilliseconds`.
    public struct Change: Sendable, Hashable {
        public var node: String
        public var atMilliseconds: Int64
        public var skewMilliseconds: Int64
        public init(node: String, atMilliseconds: Int64, skewMilliseconds: Int64) {
            self.node = node; self.atMilliseconds = atMilliseconds; self.skewMilliseconds = skewMilliseconds
        }
    }

    /// Each node's changes in the order they happened (a node with none kept true time).
    private var byNode: [String: [Change]] = [:]

    public init(_ changes: [Change] = []) {
        for change in changes { record(change) }
    }

    /// Appends a change; changes of one node come in the order they happened.
    public mutating func record(_ change: Change) {
        byNode[change.node, default: []].append(change)
    }

    /// Whether no node's clock was ever set off true time.
    public var isEmpty: Bool { byNode.values.allSatisfy { $0.allSatisfy { $0.skewMilliseconds == 0 } } }

    /// Whether `node`'s clock was ever off.
    public func skewed(_ node: String) -> Bool { byNode[node]?.contains { $0.skewMilliseconds != 0 } ?? false }

    /// The true time of a reading of `node`'s clock: the reading less the skew in force when it was
    /// taken. A reading falls in the span of the latest change for which reading − skew is at or
    /// after the change; a clock set back reads some instants twice, and such a reading is taken
    /// as the later one.
    public func trueTime(_ reading: Int64, on node: String) -> Int64 {
        guard let changes = byNode[node] else { return reading }
        for change in changes.reversed() where reading - change.skewMilliseconds >= change.atMilliseconds {
            return reading - change.skewMilliseconds
        }
        return reading  // before the first change: true time
    }

    /// Every true time a reading of `node`'s clock can stand for, latest first: one, or two or more
    /// where a clock set back read the same instants twice.
    public func trueTimes(_ reading: Int64, on node: String) -> [Int64] {
        guard let changes = byNode[node] else { return [reading] }
        var out: [Int64] = []
        for (i, change) in changes.enumerated().reversed() {
            let t = reading - change.skewMilliseconds
            let end = i + 1 < changes.count ? changes[i + 1].atMilliseconds : Int64.max
            if t >= change.atMilliseconds && t < end { out.append(t) }
        }
        // Before the first change the clock kept true time.
        if reading < changes[0].atMilliseconds { out.append(reading) }
        return out.isEmpty ? [trueTime(reading, on: node)] : out
    }

    /// The time from a reading of `from`'s clock to a later one of `to`'s, on true time: of the
    /// instants each reading can stand for, the pair nearest in time with the second not before the
    /// first (the later instant each, when no pair is in order). A hop across the instant a clock
    /// was set back read the skew as delay when the later instant was taken alone.
    public func elapsed(from start: Int64, on from: String, to end: Int64, on to: String) -> Int64 {
        let starts = trueTimes(start, on: from), ends = trueTimes(end, on: to)
        var best: Int64?
        for s in starts {
            for e in ends where e >= s {
                if best.map({ e - s < $0 }) ?? true { best = e - s }
            }
        }
        return best ?? (trueTime(end, on: to) - trueTime(start, on: from))
    }
}
