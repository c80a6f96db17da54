import ERPCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall time (`CLOCK_REALTIME`) as a service on a production node sees it, plus an optional skew
/// (the fault model's "clock skew on a node"). Twin of the simulator's `SimClock`, which reads the
/// world's virtual time instead and so never moves on its own.
public struct SystemClock: ServiceClock {
    /// Added to every reading: a deliberately skewed node in a fault run. Zero normally.
    public var skew: Duration

    public init(skew: Duration = .zero) { self.skew = skew }

    public var now: Timestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Timestamp(nanosecondsSinceEpoch: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec) + skew.nanoseconds)
    }
}
