// ERPScenario: the scenario model and its YAML loader, the workload, the fault schedule, the
// runner that wires the services onto a backend, the history it records and the checkers that
// judge that history from outside the system.
import ERPCore
import ERPResilience
import ERPServices
import ERPSimulation

/// A run's recipe: workload, network, faults and expectations. Runs unchanged whatever the seed.
public struct Scenario: Sendable {
    public var name: String
    public var description: String = ""
    /// Where it was loaded from, for messages and the reproduce command.
    public var path: String = ""
    public var seed: UInt64 = 1
    /// The chaos phase: orders arrive and faults strike.
    public var duration: Duration = .seconds(20)
    /// The heal phase after it: faults off, no new orders; every flow must finish.
    public var heal: Duration = .seconds(30)
    public var fixturesPath: String = "fixtures/retail.json"
    public var network = NetworkSettings()
    public var workload = OrderWorkload()
    public var payment = PaymentSettings()
    public var faults: [ScheduledFault] = []
    public var expect = Expectations()
    public var defects = PlantedDefects()
    public var resilience = ResilienceSettings()

    public init(name: String) { self.name = name }

    public struct NetworkSettings: Sendable {
        public var link = LinkSettings(latencyMin: .milliseconds(1), latencyMax: .milliseconds(4))
        public init() {}
    }

    /// Open-loop order arrivals: Poisson at `ratePerSecond`, whatever the system's state.
    public struct OrderWorkload: Sendable {
        public var ratePerSecond: Double = 10
        public var itemsPerOrder: ClosedRange<Int> = 1...3
        public var quantity: ClosedRange<Int> = 1...2
        /// Deadline of one client request.
        public var timeout: Duration = .seconds(5)
        /// Attempts of one order (same idempotency key) before the client gives up.
        public var attemptCountMax = 4
        public init() {}
    }

    public struct PaymentSettings: Sendable {
        public var declineRate: Double = 0
        public var processingTime: Duration = .milliseconds(20)
        public init() {}
    }

    public struct Expectations: Sendable {
        public var minConfirmed = 0
        public var minCancelled = 0
        public init() {}
    }
}

/// A fault at a virtual time, lasting `duration` (nil: until the heal phase).
public struct ScheduledFault: Sendable {
    public enum Kind: Sendable {
        case partition(NodeName, NodeName)
        case partitionOneWay(from: NodeName, to: NodeName)
        case isolate(NodeName)
        /// Crash; restart after the given delay, or at heal if nil.
        case crash(NodeName, restartAfter: Duration?)
        case pause(NodeName)
        case clockSkew(NodeName, Duration)
        case link(from: NodeName, to: NodeName, LinkSettings)
        case providerDeclineRate(Double)
        /// swishpay takes this long to answer a charge.
        case providerDelay(Duration)
    }
    public var at: Duration
    public var duration: Duration?
    public var kind: Kind
    /// Line in the scenario file, for messages.
    public var line: Int

    public init(at: Duration, duration: Duration?, kind: Kind, line: Int = 0) {
        self.at = at; self.duration = duration; self.kind = kind; self.line = line
    }
}
