import ERPCore
import ERPReports
import ERPTransport

/// What the client side saw of one order request.
public struct ClientRecord: Sendable {
    public enum Outcome: String, Sendable { case confirmed, cancelled, pending, refused, gaveUp }
    public var requestKey: String
    public var scheduledAt: Timestamp
    public var completedAt: Timestamp?
    public var outcome: Outcome
    public var orderId: String?
    public var attempts: Int

    public init(requestKey: String, scheduledAt: Timestamp, completedAt: Timestamp?, outcome: Outcome, orderId: String?, attempts: Int) {
        self.requestKey = requestKey; self.scheduledAt = scheduledAt; self.completedAt = completedAt
        self.outcome = outcome; self.orderId = orderId; self.attempts = attempts
    }
}

/// How the customers reach the shop: RPC to the gateway node in simulation, real HTTP to the
/// gateway in `--mode zmq`. Errors are the transport's typed errors whatever the way (an HTTP 429
/// is `overloaded`, a 504 `deadlineExceeded`, no answer `unavailable`).
public protocol OrderAPI: Sendable {
    func placeOrder(_ order: PlaceOrder, metadata: CallMetadata) async throws -> OrderView
    func fetchOrder(_ orderId: String, metadata: CallMetadata) async throws -> OrderView
    /// Any other request a client sends through the gateway (vends, campaigns, reads).
    func send<R: GatewayExposed>(_ request: R, metadata: CallMetadata) async throws -> R.Response
}

/// The gateway's operations over the runtime's transport.
public struct TransportOrderAPI: OrderAPI {
    let transport: any Transport
    public init(transport: any Transport) { self.transport = transport }
    public func placeOrder(_ order: PlaceOrder, metadata: CallMetadata) async throws -> OrderView {
        try await transport.call(order, metadata: metadata)
    }
    public func fetchOrder(_ orderId: String, metadata: CallMetadata) async throws -> OrderView {
        try await transport.call(FetchOrder(orderId: orderId), metadata: metadata)
    }
    public func send<R: GatewayExposed>(_ request: R, metadata: CallMetadata) async throws -> R.Response {
        try await transport.call(Relayed(request), metadata: metadata)
    }
}

/// The customers: an open-loop generator. Orders arrive as a Poisson process whatever the system's
/// state (a closed loop would slow down with the system and hide its latency). Each order is
/// retried with the same idempotency key while its outcome is unknown, like a careful HTTP client.
public final class OrderWorkloadClient: @unchecked Sendable {
    // @unchecked Sendable: its state is touched only by tasks on `runtime`'s executor (one thread).
    let runtime: any Runtime
    let api: any OrderAPI
    let workload: Scenario.OrderWorkload
    let fixtures: Fixtures
    let until: Timestamp
    /// The orders whose client task has finished, in the order they finished.
    public private(set) var records: [ClientRecord] = []
    /// The orders still in the client's hands (placing, retrying, polling), by number.
    private var open: [Int: ClientRecord] = [:]
    private var submitted = 0

    /// Every order the client sent: the finished ones, then those it was still waiting for when
    /// the run ended (outcome `pending`, no completion time). Judged without the latter, a run
    /// whose heal phase ended with orders still pending counted fewer orders submitted than the
    /// order service had accepted.
    public var history: [ClientRecord] {
        records + open.keys.sorted().map { number in
            var record = open[number]!
            record.outcome = .pending
            return record
        }
    }
    /// Orders whose outcome the client is still waiting for.
    public private(set) var inFlight = 0
    /// True once no further order will arrive.
    public private(set) var arrivalsEnded = false
    /// Every order has arrived and finished (as far as the client will wait for it).
    public var isDone: Bool { arrivalsEnded && inFlight == 0 }
    static let pollInterval: Duration = .milliseconds(500)
    static let pollCountMax = 240

    /// The orders' plan, drawn from streams of their own: when each arrives, and what it asks
    /// for. Retries (whose number depends on the faults) draw from the runtime's stream, so the
    /// same seed offers the same orders whatever the fault schedule: a run with a fault and one
    /// without are the same orders (a scenario author's trial found 118 against 133), and a
    /// fault `erp shrink` takes out leaves the workload alone.
    private let arrivalRandom: SeededRandomSource
    private let contentRandom: SeededRandomSource

    public init(runtime: any Runtime, api: any OrderAPI, workload: Scenario.OrderWorkload, fixtures: Fixtures, until: Timestamp) {
        self.runtime = runtime
        self.api = api
        self.workload = workload
        self.fixtures = fixtures
        self.until = until
        let plan = SeededRandomSource(seed: runtime.random.nextUInt64())
        arrivalRandom = plan.derived("order-arrivals")
        contentRandom = plan.derived("order-contents")
    }

    public func start() {
        guard workload.ratePerSecond > 0 else {
            arrivalsEnded = true
            return
        }
        runtime.spawn("arrivals") { [self] in
            await runtime.poissonArrivals(rate: workload.ratePerSecond, until: until, random: arrivalRandom) { scheduledAt in
                submitted += 1
                inFlight += 1
                let number = submitted
                let order = drawOrder()
                runtime.spawn("order") { [self] in await self.placeOrder(number, order, scheduledAt: scheduledAt) }
            }
            arrivalsEnded = true
        }
    }

    /// The next order's customer, shop and lines, in arrival order.
    private func drawOrder() -> PlaceOrder {
        let random = contentRandom
        let customer = random.pick(fixtures.customers)
        let shop = random.pick(fixtures.shops)
        var lines: [OrderLine] = []
        for _ in 0..<random.int(in: workload.itemsPerOrder) {
            let product = random.pick(shop.stock).productId
            if lines.contains(where: { $0.productId == product }) { continue }
            lines.append(OrderLine(productId: product, quantity: random.int(in: workload.quantity)))
        }
        return PlaceOrder(userId: customer.id, shopId: shop.id, items: lines)
    }

    private func placeOrder(_ number: Int, _ order: PlaceOrder, scheduledAt: Timestamp) async {
        let random = runtime.random
        let key = "req-\(number)"
        let correlationId = "corr-\(number)"
        var record = ClientRecord(requestKey: key, scheduledAt: scheduledAt, completedAt: nil, outcome: .gaveUp, orderId: nil, attempts: 0)
        open[number] = record
        defer {
            open[number] = nil
            records.append(record)
            inFlight -= 1
        }
        var retryAfter: Duration = .zero
        for attempt in 0..<workload.attemptCountMax {
            if attempt > 0 {
                let backoff = Duration.milliseconds(Int64(random.uniform(100, 100 * Double(1 << min(attempt, 5)))))
                await runtime.sleep(for: max(backoff, retryAfter))
            }
            record.attempts = attempt + 1
            open[number] = record
            do {
                let metadata = CallMetadata(deadline: runtime.clock.now + workload.timeout, correlationId: correlationId, idempotencyKey: key)
                var view = try await api.placeOrder(order, metadata: metadata)
                record.orderId = view.orderId
                open[number] = record
                // Accepted but not finished (HTTP 202): poll until it is, within a bound.
                var polls = 0
                while view.status == .pending && polls < Self.pollCountMax {
                    polls += 1
                    await runtime.sleep(for: Self.pollInterval)
                    do {
                        view = try await api.fetchOrder(view.orderId,
                                                        metadata: CallMetadata(deadline: runtime.clock.now + .seconds(1), correlationId: correlationId))
                    } catch {
                        runtime.logger.debug("polling \(view.orderId) failed: \(error)")
                        continue
                    }
                }
                record.completedAt = runtime.clock.now
                switch view.status {
                case .confirmed: record.outcome = .confirmed
                case .cancelled: record.outcome = .cancelled
                case .pending: record.outcome = .pending
                }
                return
            } catch let error as RPCError {
                switch error {
                case .rejected:
                    record.outcome = .refused
                    record.completedAt = runtime.clock.now
                    return
                case .overloaded(let ms):
                    // A 429 says when to come back; honour it.
                    retryAfter = .milliseconds(ms ?? 0)
                default:
                    retryAfter = .zero
                }
            } catch {
                record.outcome = .refused
                return
            }
        }
    }
}

extension Runtime {
    /// A Poisson process of `rate` arrivals per second until `until`: `arrive` runs for each, in
    /// this loop, with the time it was due (spawn from it to let arrivals overlap). Arrival times
    /// are drawn on their own schedule, not as sleeps after one another: a late wake-up (a busy
    /// machine, over ZeroMQ) does not push every later arrival back, and each one's latency counts
    /// from when it was due (no coordinated omission). In simulation sleeps are exact, so the two
    /// are the same.
    func poissonArrivals(rate: Double, until: Timestamp, random: any RandomSource, _ arrive: (Timestamp) -> Void) async {
        var due = clock.now
        while true {
            due = due + .nanoseconds(Int64(random.exponential(mean: 1 / rate) * 1e9))
            let wait = due - clock.now
            if wait > .zero { await sleep(for: wait) }
            guard due < until else { return }
            arrive(due)
        }
    }
}
