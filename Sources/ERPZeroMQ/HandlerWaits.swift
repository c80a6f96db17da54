import Synchronization

/// The time a handler spent waiting rather than working: on the calls it made and in the sleeps
/// it took (a backoff, a provider's processing time). A handler's own work is what it took minus
/// this, and it is what `erp calibrate` gives the simulator as the method's service time: virtual
/// time already accounts for the calls and the sleeps.
///
/// Concurrent waits of one handler (calls made in parallel) are added up, so own time is a lower
/// bound there; it never goes below zero.
final class HandlerWaits: Sendable {
    /// Added to by the handler's task and the tasks it spawns; an atomic, not a lock: one object
    /// fewer to allocate per request.
    private let nanoseconds = Atomic<Int64>(0)

    /// The waits of the handler the current task serves (tasks it spawns inherit it).
    @TaskLocal static var current: HandlerWaits?

    static func add(_ duration: Duration) {
        guard let waits = current else { return }
        waits.nanoseconds.wrappingAdd(duration.nanoseconds, ordering: .relaxed)
    }

    var total: Duration { .nanoseconds(nanoseconds.load(ordering: .relaxed)) }

    /// The handler's own share of `elapsed`.
    func ownTime(of elapsed: Duration) -> Duration { max(.zero, elapsed - total) }
}
