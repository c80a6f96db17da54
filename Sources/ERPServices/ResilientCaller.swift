import ERPCore
import ERPResilience
import ERPTransport

/// Counts of what the policies did, per path, for reports and metrics. Shared by reference;
/// written on the executor of the service that makes the calls.
public final class ResilienceMetrics: @unchecked Sendable {
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
    public private(set) var paths: [String: PathCounts] = [:]
    public private(set) var rateLimited = 0
    public init() {}

    static func path(_ caller: ServiceName, _ callee: ServiceName) -> String { ResilienceSettings.pathName(caller, callee) }

    func record(_ path: String, _ stats: CallStatistics) {
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

    func recordRateLimited() { rateLimited += 1 }
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
