// ERPServices: the retail ERP's services, written against ERPTransport only. They take time,
// randomness, ids, sleeps and new tasks from their Runtime and never know which backend runs them.
import ERPCore
import ERPResilience
import ERPStorage
import ERPTransport
import GRDB

/// A defect planted on purpose, to prove the consistency checker catches it. The one list every
/// reader uses: the loader's names, the report's, and the services' switches.
public enum PlantedDefect: String, CaseIterable, Sendable, Codable {
    /// The line that records this defect acting (`DefectNote`), for `Runtime.record`.
    public func acted(_ what: String) -> String { DefectNote.line(rawValue, what) }

    /// The order saga skips the stock release when a payment fails.
    case skipStockRelease = "skip-stock-release"
    /// The payment service forgets its per-order idempotency and charges on every attempt.
    case ignorePaymentIdempotency = "ignore-payment-idempotency"
    /// Event consumers apply an effect even when the inbox already has the event.
    case skipInbox = "skip-inbox"
    /// The order service confirms an order even when the payment was declined.
    case confirmDeclinedPayments = "confirm-declined-payments"
    /// The shop applies a device's status whatever its revision: a stale report that arrives late
    /// overwrites a newer one.
    case applyStaleDeviceStatus = "apply-stale-device-status"
    /// The report service starts on an empty database without asking the bus to replay its group:
    /// after a lost disk its read models miss everything before.
    case skipReportRebuild = "skip-report-rebuild"
    /// The order saga charges the list price of every line, whatever campaign price the order
    /// was priced at.
    case chargeListPrice = "charge-list-price"
    /// The payment service marks a charge refunded without asking the provider to refund it: the
    /// customer keeps paying for a cancelled order.
    case refundSkipsProvider = "refund-skips-provider"
    /// Inventory forgets a sale's id when the same sale is asked again (a retried or duplicated
    /// vend): the units are sold twice.
    case sellTwice = "sell-twice"
    /// The IoT gateway never declares a silent device offline.
    case skipSilenceWatch = "skip-silence-watch"
}

/// The defects planted in a run; all off in a normal run.
public struct PlantedDefects: Sendable, Hashable, Codable {
    /// In `PlantedDefect.allCases` order, so that names and encodings never depend on hashing.
    public private(set) var enabled: [PlantedDefect] = []
    public init() {}

    public func contains(_ defect: PlantedDefect) -> Bool { enabled.contains(defect) }

    public mutating func enable(_ defect: PlantedDefect) {
        guard !enabled.contains(defect) else { return }
        enabled = PlantedDefect.allCases.filter { $0 == defect || enabled.contains($0) }
    }

    /// Enables the defect named `name`; false when there is none of that name.
    public mutating func enable(_ name: String) -> Bool {
        guard let defect = PlantedDefect(rawValue: name) else { return false }
        enable(defect)
        return true
    }

    public static var names: [String] { PlantedDefect.allCases.map(\.rawValue) }
    public var enabledNames: [String] { enabled.map(\.rawValue) }

    public var skipStockRelease: Bool { contains(.skipStockRelease) }
    public var ignorePaymentIdempotency: Bool { contains(.ignorePaymentIdempotency) }
    public var skipInbox: Bool { contains(.skipInbox) }
    public var confirmDeclinedPayments: Bool { contains(.confirmDeclinedPayments) }
    public var applyStaleDeviceStatus: Bool { contains(.applyStaleDeviceStatus) }
    public var skipReportRebuild: Bool { contains(.skipReportRebuild) }
    public var chargeListPrice: Bool { contains(.chargeListPrice) }
    public var refundSkipsProvider: Bool { contains(.refundSkipsProvider) }
    public var sellTwice: Bool { contains(.sellTwice) }
    public var skipSilenceWatch: Bool { contains(.skipSilenceWatch) }
}

/// How swishpay behaves, changeable during a run (a provider fault). Shared by reference between
/// the scenario runner and the provider; read on the provider's executor only.
public final class ProviderKnobs: @unchecked Sendable {
    /// Probability that swishpay declines a new charge with `insufficient_funds`.
    public var declineRate: Double = 0
    /// How long swishpay takes to answer a charge.
    public var processingTime: Duration = .milliseconds(20)
    public init() {}
}

/// Settings every service may read. One value for the whole topology, so that a scenario sets
/// each knob in one place.
public struct ServiceSettings: Sendable {
    public var fixtures: Fixtures
    public var defects = PlantedDefects()
    /// The simulated provider's behaviour; a scenario may change it while the run goes on.
    public var provider = ProviderKnobs()
    /// The version each event type is written at; a rolling upgrade changes it while the run goes on.
    public var eventVersions = EventWriterVersions()
    /// Timeout of one saga step call (reserve, pay, release, refund).
    public var sagaStepTimeout: Duration = .seconds(1)
    /// Attempts of one saga step whose outcome stays unknown before the saga compensates.
    public var sagaStepAttemptCountMax = 40
    public var sagaBackoffInitial: Duration = .milliseconds(100)
    public var sagaBackoffMax: Duration = .seconds(2)
    /// Breakers, retries and rate limits of every synchronous path.
    public var resilience = ResilienceSettings()
    /// What those policies did, shared with the runner for its report.
    public var resilienceMetrics = ResilienceMetrics()
    /// How long before a caller's deadline a service answers with what it has (an order still
    /// pending) rather than let the caller time out.
    public var answerMargin: Duration = .milliseconds(100)
    /// How long the order service waits for campaign's prices before it prices at list price.
    public var campaignQuoteTimeout: Duration = .milliseconds(300)
    /// Timeout the gateway gives the order service for creating an order.
    public var gatewayOrderTimeout: Duration = .seconds(4)
    /// How often devices report; the IoT gateway checks for silent devices this often.
    public var deviceHeartbeatInterval: Duration = .seconds(1)
    /// Heartbeats a device may miss before the IoT gateway declares it offline.
    public var deviceMissedHeartbeatCountMax = 3
    /// Timeout of the IoT gateway's confirmation call to the shop.
    public var deviceConfirmationTimeout: Duration = .milliseconds(500)

    /// How long a device may stay silent before it is declared offline (checked every heartbeat,
    /// so the declaration comes at most one interval later).
    public var deviceSilenceMax: Duration { deviceHeartbeatInterval * deviceMissedHeartbeatCountMax }

    public init(fixtures: Fixtures) { self.fixtures = fixtures }
}

extension Database {
    /// Adds an event's numbers to running totals with an upsert whose update is guarded (`WHERE
    /// typeof(total + added) = 'integer'`): past Int64 SQLite goes on in floating point, and the
    /// service could no longer read its own total. An event that would take a total out of range
    /// is a bad event (the bus dead-letters it), and nothing of it is stored.
    func accumulate<each P: SQLParameter>(_ sql: String, arguments: repeat each P, for what: @autoclosure () -> String) throws {
        try execute(cached: sql, arguments: repeat each arguments)
        guard changesCount > 0 else {
            throw RPCError.rejected(code: "bad_event", message: "\(what()): a running total would leave the 64-bit range")
        }
    }
}

/// Runs a storage transaction, turning a storage failure into the RPC error a caller can act on.
func storage<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as RPCError { throw error } catch {
        throw RPCError.unavailable("storage: \(error)")
    }
}
