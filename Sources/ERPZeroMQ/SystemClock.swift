import ERPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall time (`CLOCK_REALTIME`) as a service on a production node sees it, plus a skew (the fault
/// model's "clock skew on a node") that a scenario runner may change while the node runs. Twin of
/// the simulator's `SimClock`, which reads the world's virtual time instead and so never moves on
/// its own.
public struct SystemClock: ServiceClock {
    /// Added to every reading; shared by every copy of this clock (the runtime's, the transport's).
    public let skew: ClockSkew

    public init(skew: ClockSkew = ClockSkew()) { self.skew = skew }

    public var now: Timestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let (skewed, overflow) = (Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)).addingReportingOverflow(skew.nanoseconds)
        // The control call bounds the skew; should one ever get past it, time saturates rather
        // than trapping in every reading.
        return Timestamp(nanosecondsSinceEpoch: overflow ? (skew.nanoseconds > 0 ? .max : .min) : skewed)
    }
}

/// A node's clock skew, changeable at run time (zero normally).
public final class ClockSkew: Sendable {
    private let value: Atomic<Int64>
    public init(_ skew: Duration = .zero) { value = Atomic(skew.nanoseconds) }
    public var nanoseconds: Int64 { value.load(ordering: .relaxed) }
    public var duration: Duration { .nanoseconds(nanoseconds) }
    public func set(_ skew: Duration) { value.store(skew.nanoseconds, ordering: .relaxed) }
}
