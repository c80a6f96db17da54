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
    public init() {}

    public func policy(from caller: ServiceName, to callee: ServiceName) -> CallPolicySettings {
        overrides[Self.pathName(caller, callee)] ?? defaultPolicy
    }

    /// A call path's name in settings and reports: `order->inventory`.
    public static func pathName(_ caller: ServiceName, _ callee: ServiceName) -> String { "\(caller.rawValue)->\(callee.rawValue)" }
}
