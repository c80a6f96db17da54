import Foundation

/// What getrusage says of this whole process so far (every thread): CPU, user and system apart,
/// the peak resident set, context switches (voluntary: a thread went to sleep, waiting; and
/// involuntary) and minor page faults. The benches take differences of two readings.
public struct ProcessUsage: Sendable {
    public var user: Duration
    public var system: Duration
    public var peakResidentKiB: Int
    public var contextSwitches: Int = 0
    public var minorFaults: Int = 0

    public var cpu: Duration { user + system }

    public static func now() -> ProcessUsage {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func duration(_ time: timeval) -> Duration { .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec)) }
        return ProcessUsage(user: duration(usage.ru_utime), system: duration(usage.ru_stime), peakResidentKiB: usage.ru_maxrss,
                            contextSwitches: usage.ru_nvcsw + usage.ru_nivcsw, minorFaults: usage.ru_minflt)
    }
}
