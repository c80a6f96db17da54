import ERPCore
import ERPReports
import ERPTransport

/// What the client side saw of one vend.
public struct VendRecord: Sendable {
    public enum Outcome: String, Sendable { case dispensed, refused, pending, gaveUp }
    public var vendId: String
    public var scheduledAt: Timestamp
    public var completedAt: Timestamp?
    public var outcome: Outcome
    public var attempts: Int
}

/// What the store workload leaves for the report.
public struct StoreOutcome: Sendable {
    public var vends: [VendRecord] = []
    public var campaignsCreated = 0
    public var campaignsFailed = 0
    public var reads = 0
    public var readsFailed = 0
    public var readLatency = LatencyRecorder()
    public init() {}
}

/// The shop's traffic besides orders, through the gateway like a real client: vending machines
/// selling (open loop, each vend retried under its own vend id while its outcome is unknown, then
/// polled until final), campaigns created on a timer, and reads of reports, products and campaigns.
public final class StoreWorkloadClient: @unchecked Sendable {
    // @unchecked Sendable: its state is touched only by tasks on `runtime`'s executor (one thread).
    let runtime: any Runtime
    let api: any OrderAPI
    let workload: Scenario.StoreWorkload
    let fixtures: Fixtures
    let until: Timestamp
    /// What the client saw so far.
    public private(set) var outcome = StoreOutcome()
    private var inFlight = 0
    private var arrivalsEnded = false
    /// Every vend has arrived and finished (as far as the client waits for it).
    public var isDone: Bool { (arrivalsEnded || workload.vendRatePerSecond == 0) && inFlight == 0 }
    private let machines: [Fixtures.Device]

    /// The traffic's plan, each part from a stream of its own (arrivals, what each vend, read and
    /// campaign asks for); retries draw from the runtime's, so the plan does not move with the
    /// faults (as `OrderWorkloadClient`).
    private let vendArrivals: SeededRandomSource, vendContents: SeededRandomSource
    private let readArrivals: SeededRandomSource, readKinds: SeededRandomSource
    private let campaignContents: SeededRandomSource

    public init(runtime: any Runtime, api: any OrderAPI, workload: Scenario.StoreWorkload, fixtures: Fixtures, until: Timestamp) {
        self.runtime = runtime
        self.api = api
        self.workload = workload
        self.fixtures = fixtures
        self.until = until
        machines = fixtures.devices.filter { $0.kind == .vendingMachine }
        let plan = SeededRandomSource(seed: runtime.random.nextUInt64())
        vendArrivals = plan.derived("vend-arrivals"); vendContents = plan.derived("vend-contents")
        readArrivals = plan.derived("read-arrivals"); readKinds = plan.derived("read-kinds")
        campaignContents = plan.derived("campaign-contents")
    }

    public func start() {
        if workload.vendRatePerSecond > 0 && !machines.isEmpty {
            runtime.spawn("vend-arrivals") { [self] in
                await arrivals(rate: workload.vendRatePerSecond, random: vendArrivals, draw: { [self] n in drawVend(n) }) { [self] request, due in
                    await vend(request, due: due)
                }
            }
        }
        if let every = workload.campaignEvery {
            runtime.spawn("campaigns") { [self] in
                var n = 0
                while true {
                    await runtime.sleep(for: every)
                    guard runtime.clock.now < until else { return }
                    n += 1
                    await createCampaign(n)
                }
            }
        }
        if workload.readRatePerSecond > 0 {
            runtime.spawn("read-arrivals") { [self] in
                await arrivals(rate: workload.readRatePerSecond, random: readArrivals, draw: { [self] _ in readKinds.int(in: 0...4) }) { [self] kind, due in
                    await read(kind, due: due)
                }
            }
        }
    }

    /// A Poisson process until `until` (`Runtime.poissonArrivals`): `body` runs as its own task for
    /// each arrival, with its number and the time it was due.
    /// What each arrival is, drawn as it arrives (`draw`, given its number), so in arrival order.
    private func arrivals<Item: Sendable>(rate: Double, random: SeededRandomSource, draw: (Int) -> Item,
                                          _ body: @escaping @Sendable (Item, Timestamp) async -> Void) async {
        var n = 0
        await runtime.poissonArrivals(rate: rate, until: until, random: random) { due in
            n += 1
            let item = draw(n)
            runtime.spawn("arrival") { await body(item, due) }
        }
        arrivalsEnded = true
    }

    private func metadata(_ correlation: String, key: String? = nil) -> CallMetadata {
        CallMetadata(deadline: runtime.clock.now + workload.timeout, correlationId: correlation, idempotencyKey: key)
    }

    /// Vend `n`: a machine, a product its shop stocks, a quantity; nil for a shop with no stock.
    private func drawVend(_ n: Int) -> Vend? {
        let machine = vendContents.pick(machines)
        guard let shop = fixtures.shops.first(where: { $0.id == machine.shopId }), !shop.stock.isEmpty else { return nil }
        let product = vendContents.pick(shop.stock).productId
        let quantity = vendContents.int(in: workload.vendQuantity)
        return Vend(vendId: "vend-\(n)", machineId: machine.id, productId: product, quantity: quantity)
    }

    private func vend(_ request: Vend?, due: Timestamp) async {
        guard let request else { return }
        let index = outcome.vends.count
        // Pending until answered: a vend still in the client's hands when the run ends was not
        // given up on.
        outcome.vends.append(VendRecord(vendId: request.vendId, scheduledAt: due, completedAt: nil, outcome: .pending, attempts: 0))
        inFlight += 1
        defer { inFlight -= 1 }
        var status: VendResult.Status?
        for attempt in 1...workload.attemptCountMax {
            outcome.vends[index].attempts = attempt
            do {
                status = try await api.send(request, metadata: metadata(request.vendId)).status
                break
            } catch RPCError.rejected {
                status = .refused
                break
            } catch {
                await runtime.sleep(for: runtime.random.fullJitterBackoff(attempt: attempt, initial: .milliseconds(200), max: .seconds(2)))
            }
        }
        // Pending: vm-service drives it on; ask until it is final (or the client stops caring).
        var polls = 0
        while status == .pending && polls < 120 {
            polls += 1
            await runtime.sleep(for: .milliseconds(500))
            if let answer = try? await api.send(GetVend(vendId: request.vendId), metadata: metadata(request.vendId)) { status = answer.status }
        }
        guard let status else {
            outcome.vends[index].outcome = .gaveUp
            return
        }
        outcome.vends[index].completedAt = runtime.clock.now
        outcome.vends[index].outcome = switch status {
        case .dispensed: .dispensed
        case .refused: .refused
        case .pending: .pending
        }
    }

    private func createCampaign(_ n: Int) async {
        let random = campaignContents
        let count = min(random.int(in: workload.campaignProducts), fixtures.products.count)
        var products: [String] = []
        while products.count < count {
            let id = random.pick(fixtures.products).id
            if !products.contains(id) { products.append(id) }
        }
        let request = CreateCampaign(name: "campaign \(n)", productIds: products, percentOff: random.int(in: workload.campaignPercentOff),
                                     endsAt: (runtime.clock.now + workload.campaignLength).millisecondsSinceEpoch)
        // One key for every attempt: a retried creation makes one campaign.
        for attempt in 1...workload.attemptCountMax {
            do {
                _ = try await api.send(request, metadata: metadata("campaign-\(n)", key: "campaign-\(n)"))
                outcome.campaignsCreated += 1
                return
            } catch RPCError.rejected {
                break
            } catch {
                await runtime.sleep(for: runtime.random.fullJitterBackoff(attempt: attempt, initial: .milliseconds(200), max: .seconds(2)))
            }
        }
        outcome.campaignsFailed += 1
    }

    private func read(_ kind: Int, due started: Timestamp) async {
        let correlation = runtime.ids.next("read")
        do {
            switch kind {
            case 0: _ = try await api.send(GetSalesReport(), metadata: metadata(correlation))
            case 1: _ = try await api.send(GetInventoryReport(), metadata: metadata(correlation))
            case 2: _ = try await api.send(GetDeviceReport(), metadata: metadata(correlation))
            case 3: _ = try await api.send(ListProducts(), metadata: metadata(correlation))
            default: _ = try await api.send(ListCampaigns(), metadata: metadata(correlation))
            }
            outcome.reads += 1
            outcome.readLatency.record(runtime.clock.now - started)
        } catch {
            outcome.readsFailed += 1
        }
    }
}
