import ERPCore
import ZeroMQ

/// What the network does to the messages one node sends to another, when a scenario says so.
/// All zero (the default) means the message goes out untouched.
public struct LinkFault: Sendable, Hashable, Codable {
    /// A partition: nothing gets through (the sender's calls time out, its replies are lost).
    public var blocked = false
    public var dropProbability = 0.0
    public var duplicateProbability = 0.0
    /// One-way latency added on top of the real network's, uniform in `latencyMin...latencyMax`
    /// (named as its twin in the scenario model, `LinkBehaviour`).
    public var latencyMin: Duration = .zero
    public var latencyMax: Duration = .zero
    /// Probability of a further delay of up to `reorderWindow`, so that this message overtakes
    /// or is overtaken by its neighbours.
    public var reorderProbability = 0.0
    public var reorderWindow: Duration = .milliseconds(10)

    public init(blocked: Bool = false, dropProbability: Double = 0, duplicateProbability: Double = 0,
                latencyMin: Duration = .zero, latencyMax: Duration = .zero, reorderProbability: Double = 0) {
        self.blocked = blocked
        self.dropProbability = dropProbability
        self.duplicateProbability = duplicateProbability
        self.latencyMin = latencyMin
        self.latencyMax = latencyMax
        self.reorderProbability = reorderProbability
    }

    public static let none = LinkFault()
    public static let partition = LinkFault(blocked: true)

    public var isNone: Bool { self == .none }
}

/// The fault filter of one node's transport: what happens to each request and reply it sends,
/// per destination node. A scenario runner sets it at run time (`erp run --mode zmq` does so over
/// the control methods of `FaultControl`); with nothing set, it lets everything through.
///
/// Sender-side only: a symmetric partition between A and B is A's filter blocking B plus B's
/// blocking A, exactly as the simulator's network drops both directions.
public final class FaultFilter: Sendable {
    public struct Rules: Sendable, Hashable, Codable {
        /// Applies to every destination without a rule of its own.
        public var fallback = LinkFault.none
        /// Per destination node.
        public var links: [String: LinkFault] = [:]
        /// Destinations never touched by `fallback` (the scenario runner's own node: it must keep
        /// control of an isolated node).
        public var exempt: [String] = []
        public init(fallback: LinkFault = .none, links: [String: LinkFault] = [:], exempt: [String] = []) {
            self.fallback = fallback; self.links = links; self.exempt = exempt
        }

        public func fault(to destination: NodeName) -> LinkFault {
            if let link = links[destination.rawValue] { return link }
            return exempt.contains(destination.rawValue) ? .none : fallback
        }
    }

    /// What to do with one message.
    public enum Decision: Sendable, Hashable {
        case drop
        /// Send `copies` copies (1 or 2) after `delay`.
        case send(copies: Int, delay: Duration)

        public static let untouched = Decision.send(copies: 1, delay: .zero)
    }

    public struct Counters: Sendable, Hashable, Codable {
        /// Messages not sent because of a partition.
        public var blocked = 0
        /// Messages not sent because of a drop probability.
        public var dropped = 0
        public var delayed = 0
        public var duplicated = 0
        public init() {}
    }

    private let state = Locked((rules: Rules(), counters: Counters()))
    private let random: any RandomSource

    public init(random: any RandomSource = SystemRandomSource()) { self.random = random }

    public var rules: Rules { state.withLock { $0.rules } }
    public var counters: Counters { state.withLock { $0.counters } }

    public func set(_ rules: Rules) { state.withLock { $0.rules = rules } }

    /// Decides the fate of one message to `destination`, and counts it.
    public func decide(to destination: NodeName) -> Decision {
        state.withLock { s in
            let fault = s.rules.fault(to: destination)
            if fault.isNone { return .untouched }
            if fault.blocked {
                s.counters.blocked += 1
                return .drop
            }
            if random.chance(fault.dropProbability) {
                s.counters.dropped += 1
                return .drop
            }
            var delay = Duration.zero
            if fault.latencyMax > .zero {
                let low = fault.latencyMin.nanoseconds, high = max(fault.latencyMin, fault.latencyMax).nanoseconds
                delay = .nanoseconds(low + Int64(random.uniform(0, Double(high - low))))
            }
            if random.chance(fault.reorderProbability) {
                delay += .nanoseconds(Int64(random.uniform(0, Double(fault.reorderWindow.nanoseconds))))
            }
            if delay > .zero { s.counters.delayed += 1 }
            let copies = random.chance(fault.duplicateProbability) ? 2 : 1
            if copies == 2 { s.counters.duplicated += 1 }
            return .send(copies: copies, delay: delay)
        }
    }
}
