import ERPCore

/// The resilience of every synchronous path, configured in one place: which policy (breaker,
/// retries, per-attempt timeout) governs calls from one service to another. Defaults are the seed's.
public struct ResilienceSettings: Sendable {
    public var defaultPolicy = CallPolicySettings.seed
    /// Per path overrides, e.g. `"order->inventory"`.
    public var overrides: [String: CallPolicySettings] = [:]
    /// Gateway admission: per client (user) and for the gateway as a whole. Nil: no limit.
    public var perClientRateLimit: TokenBucketSettings?
    public var gatewayRateLimit: TokenBucketSettings?
    /// Each service's limit on the requests it serves, a bucket per calling peer (the seed's rate
    /// limiting per service). Read by lookup only.
    public var serviceRateLimits: [ServiceName: TokenBucketSettings] = [:]
    public init() {}

    /// The limiter a service puts in front of its handlers, if its settings give it one. The
    /// callers are the other services, the runner and the gateway's clients: a thousand is plenty.
    public func incomingLimit(of service: ServiceName) -> RateLimiterSettings? {
        serviceRateLimits[service].map { RateLimiterSettings(bucket: $0, keyCountMax: 1_024) }
    }

    public func policy(from caller: ServiceName, to callee: ServiceName) -> CallPolicySettings {
        overrides[Self.pathName(caller, callee)] ?? defaultPolicy
    }

    /// A call path's name in settings and reports: `order->inventory`.
    public static func pathName(_ caller: ServiceName, _ callee: ServiceName) -> String { "\(caller.rawValue)->\(callee.rawValue)" }
}
