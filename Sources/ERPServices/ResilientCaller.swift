import Synchronization
import ERPCore
import ERPResilience
import ERPTransport

/// Counts of what the policies did, per path, for reports and metrics. Shared by reference;
/// written on the executor of the service that makes the calls.
public final class ResilienceMetrics: Sendable {
    public struct PathCounts: Sendable, Hashable, Codable {
        public var calls = 0
        public var attempts = 0
        public var retries = 0
        public var failedCalls = 0
        public var breakerRejections = 0
        public var opened = 0
        public var halfOpened = 0
        public var closed = 0
        public var lastState = "closed"
        public init() {}

        /// Adds a later period's (or a later process's) figures; the state becomes the later one.
        public mutating func add(_ later: PathCounts) {
            calls += later.calls
            attempts += later.attempts
            retries += later.retries
            failedCalls += later.failedCalls
            breakerRejections += later.breakerRejections
            opened += later.opened
            halfOpened += later.halfOpened
            closed += later.closed
            lastState = later.lastState
        }
    }
    /// Under a lock: recorded on the service's executor, read by its `/metrics` on HTTP threads.
    private struct State { var paths: [String: PathCounts] = [:]; var rateLimited = 0 }
    private let state = Mutex(State())
    public var paths: [String: PathCounts] { state.withLock { $0.paths } }
    public var rateLimited: Int { state.withLock { $0.rateLimited } }
    public init() {}

    static func path(_ caller: ServiceName, _ callee: ServiceName) -> String { ResilienceSettings.pathName(caller, callee) }

    func record(_ path: String, _ stats: CallStatistics) {
        state.withLock { record(path, stats, in: &$0.paths) }
    }

    private func record(_ path: String, _ stats: CallStatistics, in paths: inout [String: PathCounts]) {
        var counts = paths[path] ?? PathCounts()
        counts.calls += 1
        counts.attempts += stats.attemptCount
        counts.retries += stats.retryCount
        counts.breakerRejections += stats.breakerRejectionCount
        if case .failed = stats.ending { counts.failedCalls += 1 }
        for t in stats.transitions {
            switch t.event {
            case .open: counts.opened += 1
            case .halfOpen: counts.halfOpened += 1
            case .close: counts.closed += 1
            }
            counts.lastState = t.to.rawValue
        }
        paths[path] = counts
    }

    func recordRateLimited() { state.withLock { $0.rateLimited += 1 } }

    /// The call paths' breakers and retries in Prometheus's text format, for a service's
    /// `/metrics`: the breakers' state and what they refused were in the harness's reports only,
    /// so an operator could not see an open breaker (an on-call trial). `declared` paths (those
    /// the service calls) are shown from the start, at zero and closed, before their first call:
    /// a service just restarted showed none, and an alert on `erp_breaker_state` saw no series
    /// where it should have seen a closed breaker (a CI run scraped an order service respawned
    /// after a kill that had not called payment yet).
    public func prometheusText(declared: [String] = []) -> String {
        let (recorded, shed) = state.withLock { ($0.paths, $0.rateLimited) }
        var paths = recorded
        for path in declared where paths[path] == nil { paths[path] = PathCounts() }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: (PathCounts) -> String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for path in paths.keys.sorted() { out += "\(name){path=\"\(path)\"} \(value(paths[path]!))\n" }
        }
        guard !paths.isEmpty || shed > 0 else { return "" }
        family("erp_breaker_state", "gauge", "Each call path's circuit breaker as of its last call: 0 closed, 1 half-open, 2 open.") {
            switch CircuitBreaker.State(rawValue: $0.lastState) { case .open: "2"; case .halfOpen: "1"; default: "0" }
        }
        family("erp_breaker_opened_total", "counter", "Times each call path's breaker opened.") { "\($0.opened)" }
        family("erp_breaker_rejections_total", "counter", "Calls each path's open breaker refused without trying.") { "\($0.breakerRejections)" }
        family("erp_call_retries_total", "counter", "Retries on each call path.") { "\($0.retries)" }
        family("erp_call_failures_total", "counter", "Calls on each path that failed after every attempt.") { "\($0.failedCalls)" }
        if shed > 0 { out += "# HELP erp_requests_shed_total Requests the gateway shed (overloaded).\n# TYPE erp_requests_shed_total counter\nerp_requests_shed_total \(shed)\n" }
        return out
    }
}

/// Makes a service's synchronous calls through one `CallPolicy` per callee, created on first use
/// and kept for the incarnation (the breaker's memory is the process's, as in production).
/// Breaker transitions go into the trace.
final class ResilientCaller: @unchecked Sendable {
    let runtime: any Runtime
    let caller: ServiceName
    let settings: ResilienceSettings
    let metrics: ResilienceMetrics
    private var policies: [ServiceName: CallPolicy] = [:]

    init(runtime: any Runtime, caller: ServiceName, settings: ResilienceSettings, metrics: ResilienceMetrics) {
        self.runtime = runtime
        self.caller = caller
        self.settings = settings
        self.metrics = metrics
    }

    func policy(for callee: ServiceName) -> CallPolicy {
        if let p = policies[callee] { return p }
        let path = ResilienceMetrics.path(caller, callee)
        let runtime = self.runtime, metrics = self.metrics
        let policy = CallPolicy(settings: settings.policy(from: caller, to: callee), clock: runtime.clock, random: runtime.random,
                                sleep: { await runtime.sleep(for: $0) },
                                onCallFinished: { stats in
                                    metrics.record(path, stats)
                                    for t in stats.transitions { runtime.record("breaker \(path) \(t.event.rawValue) (\(t.from.rawValue) -> \(t.to.rawValue))") }
                                })
        policies[callee] = policy
        return policy
    }

    /// Calls `request` under its callee's policy. `attempts` counts attempts that were sent.
    func call<R: RPCRequest>(_ request: R, metadata: CallMetadata, attempts: AttemptCounter? = nil) async throws(RPCError) -> R.Response {
        let transport = runtime.transport
        do throws(RPCError) {
            return try await policy(for: R.service).execute(request, metadata: metadata) { request, metadata, _ throws(RPCError) in
                attempts?.count += 1
                do { return try await transport.call(request, metadata: metadata) } catch let error as RPCError { throw error } catch {
                    throw RPCError.unavailable("\(error)")
                }
            }
        } catch .unavailable("circuit open") {
            // Which breaker: a client reading "circuit open" at the gateway could not tell.
            throw .unavailable("circuit open: \(caller) -> \(R.service) failed too often lately; calls are tried again after the breaker's reset timeout")
        }
    }
}

/// How many attempts of a call actually left the caller.
final class AttemptCounter: @unchecked Sendable { var count = 0 }
