import Foundation

/// The time a handler spent waiting rather than working: on the calls it made and in the sleeps
/// it took (a backoff, a provider's processing time). A handler's own work is what it took minus
/// this, and it is what `erp calibrate` gives the simulator as the method's service time: virtual
/// time already accounts for the calls and the sleeps.
///
/// Concurrent waits of one handler (calls made in parallel) are added up, so own time is a lower
/// bound there; it never goes below zero.
final class HandlerWaits: @unchecked Sendable {
    // @unchecked Sendable: `nanoseconds` is touched under `lock` only.
    private let lock = NSLock()
    private var nanoseconds: Int64 = 0

    /// The waits of the handler the current task serves (tasks it spawns inherit it).
    @TaskLocal static var current: HandlerWaits?

    static func add(_ duration: Duration) {
        guard let waits = current else { return }
        let ns = duration.nanoseconds
        waits.lock.withLock { waits.nanoseconds &+= ns }
    }

    var total: Duration { .nanoseconds(lock.withLock { nanoseconds }) }

    /// The handler's own share of `elapsed`.
    func ownTime(of elapsed: Duration) -> Duration { max(.zero, elapsed - total) }
}
