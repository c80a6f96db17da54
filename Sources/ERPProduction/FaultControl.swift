import CMalloc
import ERPCore
import ERPReports
import ERPServices
import ERPStorage
import ERPTransport
import ERPZeroMQ
import Foundation

// The control methods a service serves when started with `erp serve --fault-control`, so that the
// scenario runner of `erp run --mode zmq` can apply a scenario's network and provider faults to a
// running process and read back what the process did. A production service never serves them.
// Both are called with an explicit node (every node serves them); `service` only satisfies the
// contract.

/// Replaces the node's fault state as a whole (so that a repeated call changes nothing).
public struct ApplyFaults: RPCRequest {
    public typealias Response = ControlAck
    public static let method = "_control.applyFaults"
    public static let service = ServiceName.gateway
    public static let isIdempotent = true
    /// What the node's transport does to the messages it sends.
    public var rules: FaultFilter.Rules
    public var clockSkew: Duration
    /// swishpay only: the provider's behaviour (nil leaves it as started).
    public var providerDeclineRate: Double?
    public var providerProcessingTime: Duration?
    /// The versions the node's producers write at (types not listed: their current version).
    public var eventVersions: [EventVersionSetting]

    public init(rules: FaultFilter.Rules = .init(), clockSkew: Duration = .zero,
                providerDeclineRate: Double? = nil, providerProcessingTime: Duration? = nil, eventVersions: [EventVersionSetting] = []) {
        self.rules = rules; self.clockSkew = clockSkew
        self.providerDeclineRate = providerDeclineRate; self.providerProcessingTime = providerProcessingTime
        self.eventVersions = eventVersions
    }
}

extension ApplyFaults {
    /// The longest clock skew, latency or provider delay a control call may set: a year of skew,
    /// a day of delay (what a scenario may ask for, `Scenario.Limits.durationMax`). Past these
    /// the node's arithmetic on times would overflow (a skew of 2^40 s trapped the next
    /// request's clock reading) or its calls never end.
    public static let clockSkewMax = Duration.seconds(366 * 86_400)
    public static let delayMax = Duration.seconds(24 * 3_600)

    /// What is wrong with the request, or nil: the node applies nothing it cannot act on.
    public var problem: String? {
        func probability(_ p: Double, _ name: String) -> String? {
            p.isFinite && (0...1).contains(p) ? nil : "\(name) must be a probability from 0 to 1, not \(p)"
        }
        func delay(_ d: Duration, _ name: String) -> String? {
            d >= .zero && d <= Self.delayMax ? nil : "\(name) must be from 0 to \(Self.delayMax), not \(d)"
        }
        if clockSkew < .zero - Self.clockSkewMax || clockSkew > Self.clockSkewMax {
            return "clockSkew must be within ±\(Self.clockSkewMax), not \(clockSkew)"
        }
        if let rate = providerDeclineRate, let problem = probability(rate, "providerDeclineRate") { return problem }
        if let time = providerProcessingTime, let problem = delay(time, "providerProcessingTime") { return problem }
        let links = [("fallback", rules.fallback)] + rules.links.sorted { $0.key < $1.key }.map { ("links.\($0.key)", $0.value) }
        for (name, link) in links {
            if let problem = probability(link.dropProbability, "\(name).dropProbability")
                ?? probability(link.duplicateProbability, "\(name).duplicateProbability")
                ?? probability(link.reorderProbability, "\(name).reorderProbability")
                ?? delay(link.latencyMin, "\(name).latencyMin") ?? delay(link.latencyMax, "\(name).latencyMax")
                ?? delay(link.reorderWindow, "\(name).reorderWindow") {
                return problem
            }
            if link.latencyMin > link.latencyMax { return "\(name).latencyMin must not exceed its latencyMax" }
        }
        return nil
    }
}

public struct ControlAck: Codable, Sendable, Hashable {
    public var node: String
    public var processId: Int32
}

/// What one process has done so far: its transport's and fault filter's counters and the
/// resilience policies' figures per call path.
public struct ReadControlReport: RPCRequest {
    public typealias Response = ControlReport
    public static let method = "_control.report"
    public static let service = ServiceName.gateway
    public static let isIdempotent = true
    public init() {}
}

public struct ControlReport: Codable, Sendable, Hashable {
    public var node: String
    public var processId: Int32
    public var transport: TransportCounters
    public var faults: FaultFilter.Counters
    public var resilience: [String: ResilienceMetrics.PathCounts]
    public var rateLimited: Int
    /// Latency of the calls this process made, per method, as histograms (mergeable).
    @PairedHistograms public var callLatency: [String: [LatencyBucket]]
    /// For calibration, over the requests that ended `ok` only: latency of the calls it made, of
    /// the requests it served (handler time), and the handlers' own time (less their waits on
    /// calls and sleeps), per method.
    @PairedHistograms public var okCallLatency: [String: [LatencyBucket]]
    @PairedHistograms public var servedLatency: [String: [LatencyBucket]]
    @PairedHistograms public var ownLatency: [String: [LatencyBucket]]
    /// The process's heap as its allocator sees it when the report is made (nil from a process
    /// that does not say).
    public var heap: HeapUsage?
}

/// Latency histograms by method, written as flat arrays of numbers, (microseconds, count) pairs:
/// a control report is read every second from every process while a run lasts, and as objects a
/// busy service's buckets (twelve thousand per report on average over a 10-minute soak) cost it
/// about 85,000 allocations per report (heaptrack: over a quarter of the order service's).
@propertyWrapper
public struct PairedHistograms: Codable, Sendable, Hashable {
    public var wrappedValue: [String: [LatencyBucket]]

    public init(wrappedValue: [String: [LatencyBucket]]) { self.wrappedValue = wrappedValue }

    private struct MethodKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Each number through the container's own `UInt64` method: an `[UInt64]` encoded whole hands
    /// its elements to the generic one.
    public func encode(to encoder: any Encoder) throws {
        var methods = encoder.container(keyedBy: MethodKey.self)
        for (method, buckets) in wrappedValue {
            var numbers = methods.nestedUnkeyedContainer(forKey: MethodKey(stringValue: method))
            for bucket in buckets {
                try numbers.encode(bucket.microseconds)
                try numbers.encode(bucket.count)
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let methods = try decoder.container(keyedBy: MethodKey.self)
        var out: [String: [LatencyBucket]] = [:]
        for key in methods.allKeys {
            let numbers = try methods.decode([UInt64].self, forKey: key)
            guard numbers.count.isMultiple(of: 2) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: methods,
                                                       debugDescription: "an odd count of numbers is not (microseconds, count) pairs")
            }
            out[key.stringValue] = stride(from: 0, to: numbers.count, by: 2).map {
                LatencyBucket(microseconds: numbers[$0], count: numbers[$0 + 1])
            }
        }
        wrappedValue = out
    }
}

/// What glibc's allocator holds for the process (`mallinfo2`): the bytes the program has
/// allocated and not freed, and what the allocator keeps from the system for them. A leak grows
/// the first; the resident set also follows the second, which the allocator keeps after a burst
/// of frees (fragmented arenas, one per thread that allocated) and gives back only when trimmed.
public struct HeapUsage: Codable, Sendable, Hashable {
    /// Allocated and not yet freed: chunks in the arenas (`uordblks`) plus those mapped on their
    /// own (`hblkhd`). Chunks a living thread freed into its tcache count here too (up to about
    /// 230 KB a thread, filled as rarer sizes are first freed; `scripts/mallinfo-tcache.c`), which
    /// a heap profiler counts as freed.
    public var inUseBytes: Int
    /// Taken from the system: the arenas (`arena`) plus the mapped chunks.
    public var heldBytes: Int
    /// Of `inUseBytes`, what SQLite holds (its page caches above all): it grows with the
    /// databases until the caches are full, so a soak judges the rest.
    public var sqliteBytes: Int
    /// Of the rest, the counts of the transport's latency histograms (served, called, own time):
    /// they grow as the latencies' tail reaches ranges not seen before, up to 184 KiB each.
    public var histogramBytes: Int

    public init(inUseBytes: Int, heldBytes: Int, sqliteBytes: Int, histogramBytes: Int = 0) {
        self.inUseBytes = inUseBytes
        self.heldBytes = heldBytes
        self.sqliteBytes = sqliteBytes
        self.histogramBytes = histogramBytes
    }

    /// The heap in use besides SQLite's: the program's own, where a leak of ours shows.
    public var ownBytes: Int { inUseBytes - sqliteBytes }

    /// This process's, now. It walks every arena's free lists under their locks: cheap once a
    /// second, not for a hot path.
    public static func current(histogramBytes: Int = 0) -> HeapUsage {
        let info = mallinfo2()
        return HeapUsage(inUseBytes: Int(info.uordblks + info.hblkhd), heldBytes: Int(info.arena + info.hblkhd),
                         sqliteBytes: ServiceDatabase.sqliteMemoryInUse, histogramBytes: histogramBytes)
    }
}

extension ServiceHost {
    /// Serves the control methods on `transport`. Runs on the node's executor, like the service.
    static func registerFaultControl(node: NodeName, transport: ZeroMQTransport, clock: SystemClock,
                                     settings: ServiceSettings) {
        let processId = ProcessInfo.processInfo.processIdentifier
        transport.register(ApplyFaults.self) { request, _ in
            if let problem = request.problem { throw RPCError.rejected(code: "bad_request", message: problem) }
            transport.faults.set(request.rules)
            clock.skew.set(request.clockSkew)
            if let rate = request.providerDeclineRate { settings.provider.declineRate = rate }
            if let time = request.providerProcessingTime { settings.provider.processingTime = time }
            let listed = request.eventVersions.map(\.eventType)
            for type in EventTypes.all where !listed.contains(type.eventType) {
                try? settings.eventVersions.set(type.eventType, to: type.eventVersion)
            }
            for setting in request.eventVersions {
                do throws(EventVersionError) { try settings.eventVersions.set(setting) } catch {
                    throw RPCError.rejected(code: "bad_request", message: error.description)
                }
            }
            return ControlAck(node: node.rawValue, processId: processId)
        }
        transport.register(ReadControlReport.self) { _, _ in
            ControlReport(node: node.rawValue, processId: processId, transport: transport.counters,
                          faults: transport.faults.counters, resilience: settings.resilienceMetrics.paths,
                          rateLimited: settings.resilienceMetrics.rateLimited, callLatency: transport.calls.latencyBuckets(),
                          okCallLatency: transport.calls.okLatencyBuckets(), servedLatency: transport.served.okLatencyBuckets(),
                          ownLatency: transport.ownTime.okLatencyBuckets(),
                          heap: HeapUsage.current(histogramBytes: transport.calls.histogramBytes + transport.served.histogramBytes
                                                      + transport.ownTime.histogramBytes))
        }
    }
}
