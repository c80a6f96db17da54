import ERPCore
import ERPStorage
import GRDB

/// The consuming side of a consumer group on one node. The bus delivers an event with
/// `DeliverEvent`; the consumer records `(group, eventId)` in its inbox and applies the effect in
/// one transaction, then acknowledges. A redelivered event finds its inbox row and is acknowledged
/// without a second effect. Deliveries that arrive in the same moment share one transaction
/// (`GroupCommit`, each in its own savepoint): one sync for a burst instead of one per event, and
/// each is acknowledged only once it is committed.
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

    /// Serves `DeliverEvent` for this node.
    public func start() {
        runtime.transport.register(DeliverEvent.self) { [self] request, _ in try await self.deliver(request) }
    }

    private func deliver(_ request: DeliverEvent) async throws -> DeliveryAck {
        guard request.group == group else {
            throw RPCError.rejected(code: "unknown_group", message: "\(runtime.node) consumes as \(group), not \(request.group)")
        }
        let event = request.event
        guard let effect = effects[event.eventType] else {
            // Not of interest to this group's code: acknowledge so it is not redelivered forever.
            return DeliveryAck(eventId: event.eventId, applied: false)
        }
        let now = runtime.clock.now
        let applied: Bool
        let group = self.group, skipInbox = self.skipInbox
        do {
            applied = try await commits.commit { db in
                let fresh = try Inbox.insertIfAbsent(group: group, eventId: event.eventId, eventType: event.eventType, at: now, in: db)
                guard fresh || skipInbox else { return false }
                try effect(event, db)
                return true
            }
        } catch let error as EventDecodingError {
            throw RPCError.rejected(code: "undecodable_event", message: error.description)
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError.unavailable("storage: \(error)")
        }
        runtime.record("\(runtime.node) \(applied ? "applied" : "skipped duplicate") \(event.eventType) \(event.eventId) as \(group)")
        if applied { afterCommit?() }
        return DeliveryAck(eventId: event.eventId, applied: applied)
    }
}
