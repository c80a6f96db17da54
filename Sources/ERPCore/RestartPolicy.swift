/// When a supervisor restarts a service that died on its own: after `delay`, unless it has died
/// more than `countMax` times within `window`; then each restart waits twice as long as the one
/// before, up to `backoffMax`. A service is never given up on (a request that crashes it must not
/// take it down for good), and a broken one does not spin either. Production's `Supervisor` and
/// the simulator's twin of it (a node that exits on a failed sync) both follow it.
public struct RestartPolicy: Sendable, Hashable {
    public var delay: Duration = .milliseconds(200)
    public var countMax = 5
    public var window: Duration = .seconds(60)
    public var backoffMax: Duration = .seconds(30)

    public init() {}

    /// Counts a death at `now` into `deaths`, the times of the earlier ones (durations since a
    /// start of the caller's choosing), forgetting those older than `window`. Returns how many
    /// deaths are left within it, this one included: what `wait(afterDeaths:)` takes.
    public func count(deathAt now: Duration, in deaths: inout [Duration]) -> Int {
        deaths.removeAll { now - $0 >= window }
        deaths.append(now)
        return deaths.count
    }

    /// The wait before restarting a service that has died `deaths` times within `window`, this
    /// death included.
    public func wait(afterDeaths deaths: Int) -> Duration {
        guard deaths > countMax else { return delay }
        return min(delay * (1 << min(deaths - countMax, 20)), backoffMax)
    }
}
