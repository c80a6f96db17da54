import ERPCore
import ERPReports

/// Fits the simulator's latency model to what real processes measured (`erp calibrate`), and
/// compares a simulated run with a real one.
///
/// The model has two parts, both distributions given by quantiles (min, p50, p90, p99, p99.9,
/// max; linear between):
/// - **one-way latency per pair of services**: half of what callers' round trips took beyond the
///   server's handler time, quantile by quantile, averaged over the methods called between the two
///   (either way) weighted by their calls, and given to both directions (a round trip cannot tell
///   them apart). A pair with fewer than `minimumCalls` calls, or that nobody measured (the
///   workload's, HTTP over ZeroMQ), gets the average of all measured calls.
/// - **service time per RPC method**: the handlers' own time (`HandlerWaits`): what a handler took
///   less its waits on the calls it made and the sleeps it took, which the simulator times itself.
///
/// Quantiles of a difference are not the difference of quantiles: the link fit is an estimate,
/// good at the median and conservative in the tail (a slow handler and a slow wire rarely meet).
public enum Calibration {
    /// The percentiles every fitted distribution is given at (0 is the minimum, 100 the maximum).
    static let percentiles: [Double] = [0] + LatencyDistribution.namedQuantiles.map { $0.quantile * 100 } + [100]
    /// Calls a pair of services needs for a distribution of its own (a handful of calls at start-up
    /// would make a link of a single sample).
    public static let minimumCalls = 20

    /// The fitted latency between two services, both directions.
    public struct MeasuredLink: Sendable, Hashable {
        public var from: ServiceName
        public var to: ServiceName
        public var calls: Int
        public var latency: LatencyDistribution
    }

    public struct Fit: Sendable {
        /// The fitted `network:` block (the base link's loss, duplication and reordering kept).
        public var network: Scenario.NetworkSettings
        public var links: [MeasuredLink]
        /// Per method: how many requests its own time was measured on.
        public var serviceSamples: [String: Int]
    }

    public enum FitError: Error, CustomStringConvertible {
        case nothingMeasured
        public var description: String {
            "the run measured no RPC between services (did the services start and serve calls?)"
        }
    }

    /// Fits the model to `nodes`, keeping `base`'s loss, duplication and reordering.
    public static func fit(_ nodes: [NodeLatency], base: Scenario.NetworkSettings) throws(FitError) -> Fit {
        func isModelled(_ method: String) -> Bool { !method.hasPrefix("_control.") }
        let services = nodes.compactMap { n in ServiceName(rawValue: n.node).map { (n, $0) } }

        // Service time per method: own time, every server merged.
        var own: [String: LatencyRecorder] = [:]
        var served: [String: LatencyRecorder] = [:]
        var servers: [String: [ServiceName]] = [:]
        for (node, service) in services {
            for method in node.own.keys.sorted() where isModelled(method) {
                own[method, default: LatencyRecorder()].merge(node.own[method]!)
            }
            for method in node.served.keys.sorted() where isModelled(method) && node.served[method]!.count > 0 {
                served[method, default: LatencyRecorder()].merge(node.served[method]!)
                servers[method, default: []].append(service)
            }
        }
        var network = base
        network.serviceTimes = own.keys.sorted().compactMap { method in
            own[method]!.count > 0 ? (method, distribution(own[method]!.quantiles)) : nil
        }
        var serviceSamples: [String: Int] = [:]
        for (method, recorder) in own { serviceSamples[method] = Int(recorder.count) }

        // One-way latency per link: weighted sums of per-quantile estimates.
        struct Accumulated {
            var weight = 0
            var sums = [Double](repeating: 0, count: Calibration.percentiles.count)
            mutating func add(_ values: [Double], weight: Int) {
                self.weight += weight
                for i in values.indices { sums[i] += values[i] * Double(weight) }
            }
        }
        var perLink: [String: (from: ServiceName, to: ServiceName, sum: Accumulated)] = [:]
        var all = Accumulated()
        for (node, caller) in services {
            for method in node.calls.keys.sorted() where isModelled(method) {
                let trips = node.calls[method]!
                guard trips.count > 0, let handler = served[method], let targets = servers[method] else { continue }
                let roundTrip = trips.quantiles, handling = handler.quantiles
                var oneWay: [Double] = []
                for i in roundTrip.indices {
                    let estimate = max(0, Double(roundTrip[i]) - Double(handling[i])) / 2
                    oneWay.append(max(estimate, oneWay.last ?? 0))
                }
                let weight = Int(trips.count)
                for target in targets where target != caller {
                    let (a, b) = caller < target ? (caller, target) : (target, caller)
                    let key = "\(a.rawValue)|\(b.rawValue)"
                    var entry = perLink[key] ?? (a, b, Accumulated())
                    entry.sum.add(oneWay, weight: weight)
                    perLink[key] = entry
                }
                all.add(oneWay, weight: weight)
            }
        }
        guard all.weight > 0 else { throw .nothingMeasured }
        func averaged(_ a: Accumulated) -> LatencyDistribution {
            distribution(a.sums.map { UInt64(($0 / Double(a.weight)).rounded()) })
        }
        network.link.latency = averaged(all)
        var links: [MeasuredLink] = []
        for key in perLink.keys.sorted() where perLink[key]!.sum.weight >= minimumCalls {
            let entry = perLink[key]!
            links.append(MeasuredLink(from: entry.from, to: entry.to, calls: entry.sum.weight, latency: averaged(entry.sum)))
        }
        network.links = links.flatMap { link in
            var behaviour = base.link
            behaviour.latency = link.latency
            return [Scenario.NetworkSettings.LinkSetting(from: link.from, to: link.to, behaviour: behaviour),
                    Scenario.NetworkSettings.LinkSetting(from: link.to, to: link.from, behaviour: behaviour)]
        }
        return Fit(network: network, links: links, serviceSamples: serviceSamples)
    }

    /// A distribution through microsecond values at `percentiles` (never decreasing).
    static func distribution(_ microseconds: [UInt64]) -> LatencyDistribution {
        var values: [Duration] = []
        for us in microseconds { values.append(max(.microseconds(Int64(clamping: us)), values.last ?? .zero)) }
        let inner = LatencyDistribution.namedQuantiles.enumerated().map { ($0.element.quantile, values[$0.offset + 1]) }
        // Monotone by construction, so the initializer cannot refuse it.
        return LatencyDistribution(min: values[0], points: inner, max: values[values.count - 1])!
    }

    // MARK: Fidelity

    /// One figure compared: a simulated run's percentiles against a real run's.
    public struct FidelityRow: Codable, Sendable, Hashable {
        public var name: String
        public var real: LatencySummary
        public var simulated: LatencySummary
        /// The same figure simulated before calibration, when it was measured.
        public var uncalibrated: LatencySummary?
        public var p50Ratio: Double { ratio(simulated.p50, real.p50) }
        public var p99Ratio: Double { ratio(simulated.p99, real.p99) }
        public var uncalibratedP50Ratio: Double? { uncalibrated.map { ratio($0.p50, real.p50) } }
        public var uncalibratedP99Ratio: Double? { uncalibrated.map { ratio($0.p99, real.p99) } }
    }

    static func ratio(_ simulated: Double, _ real: Double) -> Double {
        real > 0 ? (simulated / real * 100).rounded() / 100 : (simulated > 0 ? .infinity : 1)
    }

    /// Every latency figure both runs have, by name: per RPC method (`rpc …`), then the flows.
    public static func fidelity(real: RunSummary, simulated: RunSummary, uncalibrated: RunSummary? = nil) -> [FidelityRow] {
        let names = real.latency.keys.filter { simulated.latency[$0] != nil && real.latency[$0]!.count > 0 }
        let ordered = names.filter { $0.hasPrefix("rpc ") }.sorted() + names.filter { !$0.hasPrefix("rpc ") }.sorted()
        return ordered.map {
            FidelityRow(name: $0, real: real.latency[$0]!, simulated: simulated.latency[$0]!, uncalibrated: uncalibrated?.latency[$0])
        }
    }

    /// The table as Markdown (the same text `erp calibrate` prints).
    public static func fidelityTable(_ rows: [FidelityRow]) -> String {
        func ms(_ v: Double) -> String { v < 10 ? String(format: "%.2f", v) : String(format: "%.1f", v) }
        func r(_ v: Double?) -> String { v.map { $0.isFinite ? String(format: "%.2f", $0) : "∞" } ?? "-" }
        var out = "| figure | n real | p50 real | p50 sim | ratio | p99 real | p99 sim | ratio | uncalibrated ratio p50 / p99 |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for row in rows {
            out += "| \(row.name) | \(row.real.count) | \(ms(row.real.p50)) | \(ms(row.simulated.p50)) | \(r(row.p50Ratio)) "
                + "| \(ms(row.real.p99)) | \(ms(row.simulated.p99)) | \(r(row.p99Ratio)) "
                + "| \(r(row.uncalibratedP50Ratio)) / \(r(row.uncalibratedP99Ratio)) |\n"
        }
        return out
    }
}

extension LatencyRecorder {
    /// Microseconds at `Calibration.percentiles`.
    var quantiles: [UInt64] { Calibration.percentiles.map { microseconds(atPercentile: $0) } }
}
