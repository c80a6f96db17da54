// ERPScenario: the scenario model and its YAML loader, the workload, the fault schedule, the
// runner that wires the services onto a backend, the history it records and the checkers that
// judge that history from outside the system.
import ERPCore
import ERPResilience
import ERPServices
import ERPStorage

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

    /// The shortest heal phase whose verdicts blame the services and not the schedule. A breaker
    /// opened by the chaos phase's last fault stays open for its reset time, and the sagas behind
    /// it cannot finish until it half-opens. Breakers also sit in chains (order → payment →
    /// swishpay, vm-service → shop → inventory): when the first half-opens while its callee's own
    /// breaker is still open, its trial fails and it stays open for another reset (seen: `erp
    /// explore --swarm --mix`, payment-declines seed 444, the two resets 28 ms apart). So two of
    /// the longest reset of the scenario's policies, with 10 s to spare. Devices need six
    /// heartbeats to be judged. A generated schedule (the swarm) or a shrunk one (`erp shrink`)
    /// never heals for less.
    public var healFloor: Duration {
        let reset = ([resilience.defaultPolicy] + Array(resilience.overrides.values)).map(\.circuitBreaker.resetTimeout).max()!
        let floor = reset * 2 + .seconds(10)
        return devices.enabled ? max(floor, devices.heartbeat * 6) : floor
    }
    public var fixturesPath: String = "fixtures/retail.json"
    /// Every shop's stock in the fixtures multiplied by this (`stockTimes:`; 1, as the file
    /// says, unless asked): for loads whose orders should all run the whole saga instead of
    /// being cancelled out of stock (`erp bench scenario --stock`).
    public var stockTimes = 1
    public var network = NetworkSettings()
    public var workload = OrderWorkload()
    /// The shops' devices reporting to the IoT gateway (off unless the scenario says `devices:`).
    public var devices = DeviceWorkload()
    /// Vends, campaigns and reads through the gateway (each off unless the scenario asks).
    public var store = StoreWorkload()
    public var payment = PaymentSettings()
    public var faults: [ScheduledFault] = []
    /// Services whose databases the simulator runs with a weaker `synchronous` setting than
    /// production's FULL (in file order).
    public var durability: [(service: ServiceName, synchronous: SynchronousMode)] = []
    public var expect = Expectations()
    public var defects = PlantedDefects()
    public var resilience = ResilienceSettings()
    /// The versions producers start writing at (`events:`); an `upgrade` fault changes one.
    public var eventVersions: [EventVersionSetting] = []

    public init(name: String) { self.name = name }

    /// What a scenario may ask for. A run has a bound on everything, so a typo (a rate of 1e9, a
    /// duration of a year) is refused when the file is loaded instead of running until killed.
    public enum Limits {
        /// The chaos phase and the heal phase, each, in virtual time.
        public static let phaseDurationMax: Duration = .seconds(24 * 3600)
        /// Orders per second offered by the workload.
        public static let orderRatePerSecondMax: Double = 100_000
        /// Orders the whole chaos phase may offer (rate × duration): room for a million-order run.
        public static let orderCountMax: Double = 5_000_000
        /// Attempts of one client request.
        public static let attemptCountMax = 100
        /// The shortest device heartbeat: a device workload of a million reports a second is a typo.
        public static let deviceHeartbeatMin: Duration = .milliseconds(10)
        /// Devices a scenario may add to each shop.
        public static let extraDevicesPerShopMax = 100_000
        /// Any other duration in a scenario (timeouts, latencies, fault lengths, skews).
        public static let durationMax: Duration = .seconds(24 * 3600)
        /// Faults one scenario may schedule: a run's setup grows faster than their number (16,000
        /// took 15 s to start, 100,000 printed nothing for minutes: a scenario author's trial),
        /// and a schedule that long is a generated file gone wrong.
        public static let faultCountMax = 2_000
        /// The largest stock multiplier (`stockTimes`, `--stock`): with a fixtures row at most
        /// `Fixtures.StockLine.quantityMax` units, a row stays below 10^14.
        public static let stockTimesMax = 100_000

        /// What is wrong with multiplying the fixtures' stock by `times` (`stockTimes`, `--stock`), or nil.
        public static func stockTimesProblem(_ times: Int) -> String? {
            (1...stockTimesMax).contains(times) ? nil : "must be from 1 to \(stockTimesMax)"
        }

        /// What is wrong with offering `rate` orders per second over a chaos phase `chaos` long
        /// (a command line's `--rate`), or nil.
        public static func rateProblem(_ rate: Double, over chaos: Duration) -> String? {
            guard rate.isFinite, rate > 0, rate <= orderRatePerSecondMax else {
                return "must be positive and at most \(Int(orderRatePerSecondMax)) orders per second"
            }
            guard rate * chaos.seconds <= orderCountMax else {
                return "would offer \(Int(rate * chaos.seconds)) orders over the chaos phase; at most \(Int(orderCountMax))"
            }
            return nil
        }
    }

    public struct NetworkSettings: Sendable {
        /// Every link's behaviour, unless `links` names it.
        public var link = LinkBehaviour(latencyMin: .milliseconds(1), latencyMax: .milliseconds(4))
        /// Directed links that behave otherwise (`erp calibrate` writes one per measured link).
        /// Simulation only: over ZeroMQ the base latency is added to a real network, whose links
        /// already differ.
        public var links: [LinkSetting] = []
        /// Per RPC method, the time the serving handler takes on its own, which virtual time does
        /// not otherwise see (`erp calibrate` measures it). Sorted by method. Simulation only.
        public var serviceTimes: [(method: String, time: LatencyDistribution)] = []
        public init() {}

        public struct LinkSetting: Sendable, Hashable {
            public var from: ServiceName
            public var to: ServiceName
            public var behaviour: LinkBehaviour
            public init(from: ServiceName, to: ServiceName, behaviour: LinkBehaviour) {
                self.from = from; self.to = to; self.behaviour = behaviour
            }
        }
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

    /// Devices reporting their status every heartbeat (the seed's Pattern 4).
    public struct DeviceWorkload: Sendable {
        public var enabled = false
        public var heartbeat: Duration = .seconds(1)
        /// Probability that a report says `fault` rather than `online`.
        public var faultRate = 0.0
        /// Share of the devices that fall silent for good during the chaos phase.
        public var silentShare = 0.0
        /// Per heartbeat, the probability that a device sends a restock delivery (1–10 units of a
        /// product its shop stocks) instead of its status; inventory adds it to `restocked`.
        public var restockShare = 0.0
        /// Per heartbeat, the probability that it sends a shelf count (inventory records a
        /// discrepancy, stock does not move).
        public var countShare = 0.0
        /// Share of the devices that flap during the chaos phase: now and then (one heartbeat in
        /// ten) such a device falls silent for 4 to 6 heartbeats, long enough to be declared
        /// offline, then reports again.
        public var flapShare = 0.0
        /// Shelf sensors added to each shop beyond the fixtures' devices (a storm of thousands):
        /// `<shop>-sensor-0001`… in the registry of every service, reporting like the rest.
        public var extraPerShop = 0
        public init() {}
    }

    /// The rest of the shop's traffic through the gateway: vending machines selling, campaigns
    /// being created, and reads of reports, products and campaigns.
    public struct StoreWorkload: Sendable {
        /// Vends per second (Poisson), each at a random vending machine of the fixtures, a product
        /// its shop stocks; 0: none.
        public var vendRatePerSecond: Double = 0
        public var vendQuantity: ClosedRange<Int> = 1...2
        /// A new campaign this often during the chaos phase (nil: none), on `campaignProducts`
        /// random products, `campaignPercentOff` off, lasting `campaignLength` from its creation.
        public var campaignEvery: Duration?
        public var campaignProducts: ClosedRange<Int> = 1...3
        public var campaignPercentOff: ClosedRange<Int> = 10...40
        public var campaignLength: Duration = .seconds(10)
        /// Reads per second, spread over the sales, inventory and device reports, the product
        /// list and the campaign list; 0: none.
        public var readRatePerSecond: Double = 0
        /// Deadline of one request, and attempts of one vend (same vend id) before giving up.
        public var timeout: Duration = .seconds(3)
        public var attemptCountMax = 4
        public init() {}

        public var isEmpty: Bool { vendRatePerSecond == 0 && campaignEvery == nil && readRatePerSecond == 0 }
    }

    public struct PaymentSettings: Sendable {
        public var declineRate: Double = 0
        public var processingTime: Duration = .milliseconds(20)
        public init() {}
    }

    public struct Expectations: Sendable {
        public var minConfirmed = 0
        public var minCancelled = 0
        /// Event types and versions that must have been on the bus ("OrderCreated 1.0"): what a
        /// rolling upgrade must show.
        public var onTheBus: [String] = []
        /// At most this many cancelled orders (nil: any number).
        public var maxCancelled: Int?
        /// The only reasons an order may be cancelled for (empty: any reason).
        public var cancelReasons: [String] = []
        /// At least this many vends dispensed.
        public var minDispensed = 0
        /// At least this many orders priced each way ("fallback": 1).
        public var minPriced: [(pricing: String, count: Int)] = []
        public init() {}

        /// Whether nothing is expected (every bound at its default).
        public var asksNothing: Bool {
            minConfirmed == 0 && minCancelled == 0 && onTheBus.isEmpty && maxCancelled == nil && cancelReasons.isEmpty
                && minDispensed == 0 && minPriced.isEmpty
        }
    }
}

extension Scenario {
    /// The planted defects this scenario's workload cannot bring out, each with why: a run planting
    /// `sell-twice` without vends came out green, and a CI job that plants a defect to prove the
    /// checker took that for proof (a scenario author's trial). Others depend on what happens in
    /// the run (a decline, a refund) and are not listed.
    public var defectsThatCannotShow: [String] {
        var out: [String] = []
        for defect in defects.enabled {
            switch defect {
            case .sellTwice where store.vendRatePerSecond <= 0:
                out.append("\(defect.rawValue): the workload has no vending (workload.vending)")
            case .skipSilenceWatch where !devices.enabled, .applyStaleDeviceStatus where !devices.enabled:
                out.append("\(defect.rawValue): the workload has no devices (workload.devices)")
            case .chargeListPrice where store.campaignEvery == nil:
                out.append("\(defect.rawValue): the workload has no campaigns (workload.campaigns)")
            default:
                break
            }
        }
        return out
    }
}

extension Scenario {
    /// The settings every service of this scenario reads: planted defects, the provider's
    /// behaviour, resilience policies.
    public func serviceSettings(fixtures: Fixtures) -> ServiceSettings {
        var settings = ServiceSettings(fixtures: fixturesForRun(fixtures))
        settings.defects = defects
        settings.provider.declineRate = payment.declineRate
        settings.provider.processingTime = payment.processingTime
        settings.resilience = resilience
        settings.deviceHeartbeatInterval = devices.heartbeat
        for setting in eventVersions {
            // Checked by the loader; a scenario built in code with a bad version fails here.
            do { try settings.eventVersions.set(setting) } catch { preconditionFailure("scenario \(name): \(error)") }
        }
        return settings
    }

    /// The fixtures this scenario runs on: the file's, its stock multiplied by `stockTimes`, plus
    /// the extra devices it asks for. The same for the runner, the simulator and every `erp serve`
    /// given the scenario; a function of the file's fixtures alone (not idempotent: the stock is
    /// multiplied at each call, so it is called on the file's fixtures only).
    public func fixturesForRun(_ fixtures: Fixtures) -> Fixtures {
        let fixtures = fixtures.withStock(times: stockTimes)
        guard devices.enabled, devices.extraPerShop > 0 else { return fixtures }
        var out = fixtures
        let known = Set(fixtures.devices.map(\.id))
        for shop in fixtures.shops {
            for n in 1...devices.extraPerShop {
                let digits = String(n)
                let id = "\(shop.id)-sensor-" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
                if !known.contains(id) { out.devices.append(Fixtures.Device(id: id, shopId: shop.id, kind: .shelfSensor)) }
            }
        }
        return out
    }

    /// Why `name` cannot name a scenario, or nil: a run's folder and explore's are named after it
    /// (`reports/<name>-seed<N>`, `runs/<name>/seed-<N>`), and `name: "../../x"` wrote a report
    /// outside `reports/`.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > 100 { return "must be at most 100 bytes long" }
        if name.hasPrefix(".") { return "must not begin with '.' (it names the run's folder)" }
        if name.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0.properties.generalCategory == .control }) {
            return "must not hold '/', '\\' or control characters (it names the run's folder)"
        }
        return nil
    }

    /// The same scenario with its chaos phase lasting `chaos`: fault times, fault durations,
    /// restart delays, the heal phase and the expected order counts scale by the same factor
    /// (the arrival rate does not), so a long scenario can run in seconds.
    ///
    /// The heal phase shrinks no further than `healFloor` (nor grows past the scenario's own):
    /// payment-blackout's 60 s heal scaled to a 2 s chaos phase was 0.75 s, and half of its
    /// seeds then failed for want of time, not for anything the services did. `keepingHealFloor:
    /// false` is for real processes, whose heal phase waits for the flows still going by itself.
    public func scaled(toChaos chaos: Duration, keepingHealFloor: Bool = true) -> Scenario {
        guard duration > .zero, chaos != duration else { return self }
        let factor = chaos.seconds / duration.seconds
        // Saturating: a file may ask for counts near Int.max and restart delays far past its
        // chaos phase, and stretching them trapped (a run stopped by SIGILL, not refused).
        func saturated(_ x: Double) -> Int64 { x >= 0x1p63 ? .max : x <= -0x1p63 ? .min : Int64(x) }
        func scale(_ d: Duration) -> Duration { .nanoseconds(saturated((Double(d.nanoseconds) * factor).rounded())) }
        func scale(_ count: Int) -> Int { Int(saturated((Double(count) * factor).rounded(.down))) }
        var scaled = self
        scaled.duration = chaos
        scaled.heal = keepingHealFloor ? max(scale(heal), min(heal, healFloor)) : scale(heal)
        scaled.faults = faults.map { fault in
            var f = fault
            f.at = scale(fault.at)
            f.duration = fault.duration.map(scale)
            f.kind = fault.kind.scaled(scale)
            return f
        }
        scaled.expect.minConfirmed = scale(expect.minConfirmed)
        scaled.expect.minCancelled = scale(expect.minCancelled)
        scaled.expect.minDispensed = scale(expect.minDispensed)
        scaled.expect.minPriced = expect.minPriced.map { ($0.pricing, scale($0.count)) }
        // Campaigns come as often relative to the phase, and last as long relative to it.
        scaled.store.campaignEvery = store.campaignEvery.map(scale)
        scaled.store.campaignLength = scale(store.campaignLength)
        return scaled
    }
}
