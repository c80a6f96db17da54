import ERPCore
import Foundation

/// Requests counted by what they asked for and how they ended, with latency percentiles per
/// request kind, in Prometheus text format (version 0.0.4). One instance per family: the
/// gateway's HTTP routes, the RPC methods a node serves, the RPC methods it calls.
/// Thread safe: written from NIO's threads and the node's executor alike.
public final class RequestMetrics: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched under `lock`.
    public let counterName: String
    public let durationName: String
    public let help: String
    /// Label of what was asked (`route`, `method`) and of how it ended (`status`, `outcome`).
    public let keyLabel: String
    public let outcomeLabel: String
    private let lock = NSLock()
    /// What was asked and how it ended: one recorder each.
    private struct Slot: Hashable {
        var key: String
        var outcome: String
    }
    /// Each slot's place in `slots`. Recording looks a slot up here and records in place in the
    /// array: no nested dictionaries changed through their subscripts with a default, whose
    /// `_modify` coroutines allocated their frames on the heap, twice per request.
    private var index: [Slot: Int] = [:]
    private var slots: [(slot: Slot, recorder: LatencyRecorder)] = []
    /// Latency by what was asked, then by how it ended: one histogram record per request (the
    /// counts are the histograms' counts; a key's latency over every outcome is their merge, made
    /// when read). The `ok` ones alone are what a model of the working system is fitted to (a
    /// timed-out call measures the timeout, not the network). Built when read; lock held.
    private var recorders: [String: [String: LatencyRecorder]] { Self.byKey(slots) }

    private static func byKey(_ slots: [(slot: Slot, recorder: LatencyRecorder)]) -> [String: [String: LatencyRecorder]] {
        var byKey: [String: [String: LatencyRecorder]] = [:]
        for (slot, recorder) in slots { byKey[slot.key, default: [:]][slot.outcome] = recorder }
        return byKey
    }

    public init(counterName: String, durationName: String, help: String, keyLabel: String, outcomeLabel: String) {
        self.counterName = counterName
        self.durationName = durationName
        self.help = help
        self.keyLabel = keyLabel
        self.outcomeLabel = outcomeLabel
    }

    /// Series a family keeps apart; past them, new ones are counted together under the key
    /// `other`. Keys are what a node's own code serves or calls, a few dozen: the bound is for a
    /// key that comes from outside by mistake (a method name from the wire recorded before it
    /// was checked grew a service to a gigabyte, and its `/metrics` to 600 MB).
    public static let slotCountMax = 2_048

    public func record(_ key: String, outcome: String, latency duration: Duration) {
        var slot = Slot(key: key, outcome: outcome)
        lock.withLock {
            if let i = index[slot] {
                slots[i].recorder.record(duration)
            } else {
                if slots.count >= Self.slotCountMax {
                    slot = Slot(key: "other", outcome: outcome)
                    if let i = index[slot] { slots[i].recorder.record(duration); return }
                }
                index[slot] = slots.count
                var recorder = LatencyRecorder()
                recorder.record(duration)
                slots.append((slot, recorder))
            }
        }
    }

    /// Bytes of counts in all the family's histograms (`LatencyRecorder.countBytes`).
    public var histogramBytes: Int {
        lock.withLock { slots.reduce(0) { $0 + $1.recorder.countBytes } }
    }

    /// Every key's latency histogram, to merge elsewhere.
    public func latencyBuckets() -> [String: [LatencyBucket]] {
        lock.withLock { recorders.mapValues { byOutcome in byOutcome.keys.sorted().flatMap { byOutcome[$0]!.buckets } } }
    }

    /// Every key's latency histogram over the requests that ended `ok`.
    public func okLatencyBuckets() -> [String: [LatencyBucket]] { lock.withLock { recorders.compactMapValues { $0["ok"]?.buckets } } }

    /// Every key's latency percentiles.
    public func latencySummaries() -> [String: LatencySummary] { lock.withLock { recorders.mapValues { Self.merged($0).summary } } }

    /// One key's latency over every outcome.
    private static func merged(_ byOutcome: [String: LatencyRecorder]) -> LatencyRecorder {
        var all = LatencyRecorder()
        for outcome in byOutcome.keys.sorted() { all.merge(byOutcome[outcome]!) }
        return all
    }

    /// Every family's samples, keys and outcomes in sorted order (so that two scrapes diff cleanly).
    /// Rendered from a copy taken under the lock, not under it: every request the node serves
    /// records under that lock, and a large scrape held them all.
    public func prometheusText() -> String {
        let recorders = Self.byKey(lock.withLock { slots })
        var out = "# HELP \(counterName) \(help)\n# TYPE \(counterName) counter\n"
        for key in recorders.keys.sorted() {
            for outcome in recorders[key]!.keys.sorted() {
                out += "\(counterName){\(keyLabel)=\"\(Self.escape(key))\",\(outcomeLabel)=\"\(Self.escape(outcome))\"} \(recorders[key]![outcome]!.count)\n"
            }
        }
        out += "# HELP \(durationName) Latency in milliseconds by \(keyLabel).\n# TYPE \(durationName) summary\n"
        for key in recorders.keys.sorted() {
            let s = Self.merged(recorders[key]!).summary
            let label = "\(keyLabel)=\"\(Self.escape(key))\""
            for (q, v) in [("0.5", s.p50), ("0.9", s.p90), ("0.99", s.p99), ("0.999", s.p999)] {
                out += "\(durationName){\(label),quantile=\"\(q)\"} \(v)\n"
            }
            out += "\(durationName)_count{\(label)} \(s.count)\n"
        }
        return out
    }

    /// Label values escape backslash, double quote and newline.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}

extension RequestMetrics {
    /// RPC calls a node (or a simulated world) made: `erp_rpc_calls_total{method,outcome}`.
    public static func rpcCalls() -> RequestMetrics {
        RequestMetrics(counterName: "erp_rpc_calls_total", durationName: "erp_rpc_call_duration_ms",
                       help: "RPC calls made, by method and outcome.", keyLabel: "method", outcomeLabel: "outcome")
    }

    /// RPC requests a node served: `erp_rpc_served_total{method,outcome}`.
    public static func rpcServed() -> RequestMetrics {
        RequestMetrics(counterName: "erp_rpc_served_total", durationName: "erp_rpc_served_duration_ms",
                       help: "RPC requests this node served, by method and outcome.", keyLabel: "method", outcomeLabel: "outcome")
    }
}
