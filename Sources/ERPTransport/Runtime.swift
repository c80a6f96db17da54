import ERPCore
import ERPStorage
import GRDB
import Logging

/// Everything a service may take from its surroundings. Service code takes time, randomness, ids,
/// sleeps and new tasks only from here, which is what lets the simulator replay a run exactly.
/// Twins: the simulator's `SimRuntime` and the production runtime of the ZeroMQ backend.
public protocol Runtime: AnyObject, Sendable {
    var node: NodeName { get }
    var clock: any ServiceClock { get }
    var random: any RandomSource { get }
    var ids: IDGenerator { get }
    var transport: any Transport { get }
    var logger: Logger { get }

    /// Suspends the calling task for `duration` of this runtime's time.
    func sleep(for duration: Duration) async

    /// Starts a task that belongs to this node. The only way service code starts concurrent work:
    /// the task runs on the node's executor (in simulation, the world's).
    func spawn(_ label: String, _ body: @escaping @Sendable () async -> Void)

    /// Opens (creating and migrating) one of this node's databases.
    func openDatabase(_ name: String, migrations: [Migration]) throws -> ServiceDatabase

    /// Records a state transition: into the trace in simulation, into the log in production.
    func record(_ transition: @autoclosure () -> String)
}

extension Runtime {
    /// Metadata for a new call made on behalf of `context` (the deadline shrinks hop by hop; the
    /// correlation id travels on) or, without a context, a fresh root call.
    public func metadata(timeout: Duration, context: CallContext? = nil, idempotencyKey: String? = nil,
                         correlationId: String? = nil) -> CallMetadata {
        let fresh = clock.now + timeout
        let deadline = context.map { min($0.deadline, fresh) } ?? fresh
        return CallMetadata(deadline: deadline,
                            correlationId: correlationId ?? context?.correlationId ?? ids.next("corr"),
                            idempotencyKey: idempotencyKey)
    }
}

extension Runtime {
    /// Writes an event to the outbox inside the caller's transaction, stamped with this runtime's
    /// clock and a fresh id. The relay publishes it after the commit.
    public func appendEvent<P: EventPayload>(_ payload: P, source: ServiceName, correlationId: String, in db: Database) throws {
        try Outbox.append(EventEnvelope(payload, eventId: ids.next("evt"), source: source,
                                        timestamp: clock.now, correlationId: correlationId), in: db)
    }
}

/// A planted defect's effect, recorded where it happens (`Runtime.record`: a trace line in
/// simulation, a log line in production): "defect NAME acted: WHAT". The simulator counts them per
/// defect for the run's summary, so that a run that planted a defect says whether it ever had
/// occasion to act (a green run with a defect that never acted proves nothing about the checker;
/// one where it acted and every invariant held is a gap in the checker).
public enum DefectNote {
    static let prefix = "defect "
    static let separator = " acted: "

    /// The line recording that the defect `name` acted, and how.
    public static func line(_ name: String, _ what: String) -> String { prefix + name + separator + what }

    /// The defect a recorded line says acted, or nil for any other line.
    public static func defect(in line: String) -> Substring? {
        guard line.hasPrefix(prefix), let end = line.range(of: separator) else { return nil }
        return line[line.index(line.startIndex, offsetBy: prefix.count)..<end.lowerBound]
    }
}
