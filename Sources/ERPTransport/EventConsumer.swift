import ERPCore
import ERPStorage
import GRDB

/// The consuming side of a consumer group on one node. The bus delivers the events due for this
/// node with `DeliverEvents`; the consumer records each `(group, eventId)` in its inbox and applies
/// its effect in one savepoint, all of a call's events (and those of other calls arriving in the
/// same moment) in one transaction (`GroupCommit`), and answers one outcome per event once that is
/// committed: one sync for a burst instead of one per event. A redelivered event finds its inbox
/// row and is acknowledged without a second effect.
public final class EventConsumer: @unchecked Sendable {
    public typealias Effect = @Sendable (EventEnvelope, Database) throws -> Void

    private let runtime: any Runtime
    private let commits: GroupCommit
    private let group: String
    private var effects: [String: Effect] = [:]
    /// Set by a planted defect: apply effects without the inbox check.
    public var skipInbox = false
    /// Called after a commit that applied an effect (to wake an outbox relay, say).
    public var afterCommit: (@Sendable () -> Void)?

    public init(runtime: any Runtime, database: ServiceDatabase, group: String) {
        self.runtime = runtime
        self.commits = GroupCommit(runtime: runtime, database: database)
        self.group = group
    }

    /// Applies `effect` to events of type `P` (any supported version, upcast to the current one).
    public func on<P: EventPayload>(_ type: P.Type, _ effect: @escaping @Sendable (P, EventEnvelope, Database) throws -> Void) {
        effects[P.eventType] = { envelope, db in
            let payload = try envelope.payload(as: P.self)
            try effect(payload, envelope, db)
        }
    }

    /// Serves `DeliverEvents` for this node.
    public func start() {
        runtime.transport.register(DeliverEvents.self) { [self] request, _ in try await self.deliver(request) }
    }

    private func deliver(_ request: DeliverEvents) async throws -> DeliveryAcks {
        guard request.group == group else {
            throw RPCError.rejected(code: "unknown_group", message: "\(runtime.node) consumes as \(group), not \(request.group)")
        }
        guard request.events.count <= DeliverEvents.countMax else {
            throw RPCError.rejected(code: "bad_request", message: "\(request.events.count) events in one delivery; at most \(DeliverEvents.countMax)")
        }
        let now = runtime.clock.now
        let group = self.group, skipInbox = self.skipInbox, runtime = self.runtime
        var outcomes: [DeliveryOutcome?] = Array(repeating: nil, count: request.events.count)
        var works: [(Database) throws -> Bool] = []
        var worked: [Int] = []
        for (i, event) in request.events.enumerated() {
            guard let effect = effects[event.eventType] else {
                // Not of interest to this group's code: acknowledged so it is not redelivered forever.
                outcomes[i] = DeliveryOutcome(eventId: event.eventId, status: .ignored)
                continue
            }
            worked.append(i)
            works.append { db in
                let fresh = try Inbox.insertIfAbsent(group: group, eventId: event.eventId, eventType: event.eventType, at: now, in: db)
                guard fresh || skipInbox else { return false }
                if !fresh { runtime.record(DefectNote.line("skip-inbox", "\(group) applied \(event.eventId) again")) }
                try effect(event, db)
                return true
            }
        }
        var anyApplied = false
        for (i, result) in zip(worked, await commits.commitEach(works)) {
            let event = request.events[i]
            switch result {
            case .success(let applied):
                anyApplied = anyApplied || applied
                // Under the event's own correlation id: a delivery carries events of many orders,
                // and the line belongs to the order whose event it applied.
                CorrelationScope.$correlationId.withValue(event.correlationId) {
                    runtime.record("\(runtime.node) \(applied ? "applied" : "skipped duplicate") \(event.eventType) \(event.eventId) as \(group)")
                }
                outcomes[i] = DeliveryOutcome(eventId: event.eventId, status: applied ? .applied : .duplicate)
            case .failure(let error as EventDecodingError):
                outcomes[i] = DeliveryOutcome(eventId: event.eventId, status: .refused, code: "undecodable_event", message: error.description)
            case .failure(RPCError.rejected(let code, let message)):
                outcomes[i] = DeliveryOutcome(eventId: event.eventId, status: .refused, code: code, message: message)
            case .failure(let error as RPCError):
                outcomes[i] = DeliveryOutcome(eventId: event.eventId, status: .failed, message: error.description)
            case .failure(let error):
                outcomes[i] = DeliveryOutcome(eventId: event.eventId, status: .failed, message: "storage: \(error)")
            }
        }
        if anyApplied { afterCommit?() }
        return DeliveryAcks(outcomes: outcomes.map { $0! })
    }
}
