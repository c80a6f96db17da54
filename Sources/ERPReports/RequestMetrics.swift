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
    private var counts: [String: [String: Int]] = [:]
    private var latency: [String: LatencyRecorder] = [:]
    /// The same, for requests that ended `ok` only: what a model of the working system is fitted to
    /// (a timed-out call measures the timeout, not the network).
    private var okLatency: [String: LatencyRecorder] = [:]

    public init(counterName: String, durationName: String, help: String, keyLabel: String, outcomeLabel: String) {
        self.counterName = counterName
        self.durationName = durationName
        self.help = help
        self.keyLabel = keyLabel
        self.outcomeLabel = outcomeLabel
    }

    public func record(_ key: String, outcome: String, latency duration: Duration) {
        lock.withLock {
            counts[key, default: [:]][outcome, default: 0] += 1
            latency[key, default: LatencyRecorder()].record(duration)
            if outcome == "ok" { okLatency[key, default: LatencyRecorder()].record(duration) }
        }
    }

    /// Every key's latency histogram, to merge elsewhere.
    public func latencyBuckets() -> [String: [LatencyBucket]] { lock.withLock { latency.mapValues(\.buckets) } }

    /// Every key's latency histogram over the requests that ended `ok`.
    public func okLatencyBuckets() -> [String: [LatencyBucket]] { lock.withLock { okLatency.mapValues(\.buckets) } }

    /// Every key's latency percentiles.
    public func latencySummaries() -> [String: LatencySummary] { lock.withLock { latency.mapValues(\.summary) } }

    /// Every family's samples, keys and outcomes in sorted order (so that two scrapes diff cleanly).
    public func prometheusText() -> String {
        lock.withLock {
            var out = "# HELP \(counterName) \(help)\n# TYPE \(counterName) counter\n"
            for key in counts.keys.sorted() {
                for outcome in counts[key]!.keys.sorted() {
                    out += "\(counterName){\(keyLabel)=\"\(Self.escape(key))\",\(outcomeLabel)=\"\(Self.escape(outcome))\"} \(counts[key]![outcome]!)\n"
                }
            }
            out += "# HELP \(durationName) Latency in milliseconds by \(keyLabel).\n# TYPE \(durationName) summary\n"
            for key in latency.keys.sorted() {
                let s = latency[key]!.summary
                let label = "\(keyLabel)=\"\(Self.escape(key))\""
                for (q, v) in [("0.5", s.p50), ("0.9", s.p90), ("0.99", s.p99), ("0.999", s.p999)] {
                    out += "\(durationName){\(label),quantile=\"\(q)\"} \(v)\n"
                }
                out += "\(durationName)_count{\(label)} \(s.count)\n"
            }
            return out
        }
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
