import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import ERPServices
import Foundation

/// What the runner did and when, in wall-clock offsets from the start: runner.log in the report.
final class Journal: @unchecked Sendable {
    // @unchecked Sendable: the file handle is written under the lock.
    private let lock = NSLock()
    private let start: ContinuousClock.Instant
    private let handle: FileHandle?
    private let echo: @Sendable (String) -> Void

    init(start: ContinuousClock.Instant, path: String, echo: @escaping @Sendable (String) -> Void) {
        self.start = start
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        handle = FileHandle(forWritingAtPath: path)
        self.echo = echo
    }

    func note(_ line: String) {
        let offset = ContinuousClock.now - start
        let text = String(format: "%8.3fs ", offset.seconds) + line
        lock.withLock { handle?.put(Data((text + "\n").utf8)) }
        echo(text)
    }
}

/// The last report of every process incarnation (a restarted service is a new process with new
/// counters), summed at the end.
final class ReportBook: @unchecked Sendable {
    private let lock = NSLock()
    private var latest: [String: ControlReport] = [:]
    private var order: [String] = []

    func store(_ report: ControlReport) {
        let key = "\(report.node)/\(report.processId)"
        lock.withLock {
            if latest[key] == nil { order.append(key) }
            latest[key] = report
        }
    }

    /// Asks every reachable service for its report, each at most `attempts` times. Returns the
    /// services that never answered.
    @discardableResult
    func collect(_ services: [ServiceName], control: Control, faults: FaultPlan, timeout: Duration = .milliseconds(700),
                 attempts: Int = 1) async -> [ServiceName] {
        await withTaskGroup(of: (ServiceName, ControlReport?).self) { group in
            for service in services where faults.isReachable(NodeName(service)) {
                group.addTask {
                    for _ in 0..<attempts {
                        if let report = try? await control.report(service, timeout: timeout) { return (service, report) }
                    }
                    return (service, nil)
                }
            }
            var silent: [ServiceName] = []
            for await (service, report) in group {
                if let report { store(report) } else { silent.append(service) }
            }
            return silent.sorted()
        }
    }

    func poll(_ services: [ServiceName], control: Control, faults: FaultPlan, every interval: Duration) async {
        while !Task.isCancelled {
            await collect(services, control: control, faults: faults)
            try? await Task.sleep(for: interval)
        }
    }

    /// The heap of one process of `node`, as its newest report gave it (nil: no report from that
    /// process yet, or one without its heap).
    func heap(of node: String, processId: Int32) -> HeapUsage? {
        lock.withLock { latest["\(node)/\(processId)"]?.heap }
    }

    /// Each node's latency histograms, its incarnations merged, in node order.
    func latencyByNode() -> [NodeLatency] {
        let (latest, order) = lock.withLock { (self.latest, self.order) }
        var byNode: [String: NodeLatency] = [:]
        for key in order {
            let report = latest[key]!
            var node = byNode[report.node] ?? NodeLatency(node: report.node)
            node.add(calls: report.okCallLatency, served: report.servedLatency, own: report.ownLatency)
            byNode[report.node] = node
        }
        return byNode.keys.sorted().map { byNode[$0]! }
    }

    func fill(_ summary: inout RunSummary) {
        let (latest, order) = lock.withLock { (self.latest, self.order) }
        var paths: [String: ResilienceMetrics.PathCounts] = [:]
        var callLatency: [String: LatencyRecorder] = [:]
        for key in order {
            let report = latest[key]!
            for (method, buckets) in report.callLatency { callLatency[method, default: LatencyRecorder()].merge(buckets) }
            summary.network.sent += report.transport.callsStarted
            summary.network.delivered += report.transport.requestsReceived
            summary.network.dropped += report.faults.blocked + report.faults.dropped
            summary.network.duplicated += report.transport.duplicatesSent
            summary.rateLimited += report.rateLimited
            for (path, counts) in report.resilience { paths[path, default: .init()].add(counts) }
        }
        for (path, counts) in paths { summary.resilience[path] = RunSummary.PathResilience(counts) }
        for (method, recorder) in callLatency { summary.latency["rpc " + method] = recorder.summary }
    }
}
