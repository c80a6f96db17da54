import ERPCore

/// How one directed link behaves. Latency follows `latency`: uniform in a range unless a
/// calibration gave it a measured shape; its spread is the jitter.
public struct LinkSettings: Sendable, Hashable, CustomStringConvertible {
    public var latency = LatencyDistribution.uniform(.microseconds(500), .milliseconds(2))
    public var dropProbability: Double = 0
    public var duplicateProbability: Double = 0
    /// Probability that a message ignores the link's FIFO order (a TCP-like link keeps order;
    /// a reordered message may overtake those sent before it).
    public var reorderProbability: Double = 0
    public init() {}
    public init(latency: LatencyDistribution, dropProbability: Double = 0,
                duplicateProbability: Double = 0, reorderProbability: Double = 0) {
        self.latency = latency; self.dropProbability = dropProbability
        self.duplicateProbability = duplicateProbability; self.reorderProbability = reorderProbability
    }
    public init(latencyMin: Duration, latencyMax: Duration, dropProbability: Double = 0,
                duplicateProbability: Double = 0, reorderProbability: Double = 0) {
        self.init(latency: .uniform(latencyMin, latencyMax), dropProbability: dropProbability,
                  duplicateProbability: duplicateProbability, reorderProbability: reorderProbability)
    }
    public var description: String {
        "latency \(latency) drop \(dropProbability) duplicate \(duplicateProbability) reorder \(reorderProbability)"
    }

    /// The same link without loss, duplication or reordering: what the heal phase runs on.
    public var healed: LinkSettings { LinkSettings(latency: latency) }
}

/// The simulated network: per-link settings, partitions and per-link FIFO state.
/// Faults it models: latency with jitter, drop, duplicate, reorder, partitions (symmetric, one-way,
/// isolating a node). Crashes, pauses and clock skew are the world's (they concern nodes).
public struct NetworkModel: Sendable {
    public var defaultLink = LinkSettings()
    /// Per directed link overrides set by faults, looked up (never iterated) by `(from, to)` node
    /// indices.
    var overrides: [Int: LinkSettings] = [:]
    /// Per directed link settings of the scenario itself (a calibrated network): what a link
    /// returns to when its fault ends.
    var base: [Int: LinkSettings] = [:]
    /// Directed links currently cut, each with how many faults cut it: a partition that ends
    /// inside a longer one, or inside an isolation of one of its ends, leaves the link cut (it
    /// healed it, and the trace showed messages crossing a partition still in force: a scenario
    /// author's trial). As `ZeroMQFaultInjector` counts its partitions.
    var cut: [Int: Int] = [:]
    /// When true (the default) each link delivers in the order it was sent, unless a message is
    /// picked for reordering.
    public var preserveLinkOrder = true
    /// Latest delivery time scheduled per directed link, for FIFO.
    var lastDelivery: [Int: Int64] = [:]

    public init() {}

    @inline(__always) static func key(_ from: Int, _ to: Int) -> Int { from << 20 | to }

    func settings(_ from: Int, _ to: Int) -> LinkSettings {
        if overrides.isEmpty && base.isEmpty { return defaultLink }
        let key = Self.key(from, to)
        return overrides[key] ?? base[key] ?? defaultLink
    }

    mutating func setOverride(_ from: Int, _ to: Int, _ settings: LinkSettings?) {
        overrides[Self.key(from, to)] = settings
    }

    mutating func setBase(_ from: Int, _ to: Int, _ settings: LinkSettings) {
        base[Self.key(from, to)] = settings
    }

    func isCut(_ from: Int, _ to: Int) -> Bool { !cut.isEmpty && cut[Self.key(from, to)] != nil }
    /// One fault more (`isCut`) or one fewer cutting the link; it is open again when none is left.
    mutating func setCut(_ from: Int, _ to: Int, _ isCut: Bool) {
        let key = Self.key(from, to)
        if isCut {
            cut[key, default: 0] += 1
        } else if let count = cut[key] {
            cut[key] = count > 1 ? count - 1 : nil
        }
    }

    /// Removes every partition and every loss, duplication and reordering; latency stays.
    mutating func heal() {
        cut.removeAll()
        defaultLink = defaultLink.healed
        for key in overrides.keys.sorted() { overrides[key] = overrides[key]!.healed }
        for key in base.keys.sorted() { base[key] = base[key]!.healed }
    }
}
