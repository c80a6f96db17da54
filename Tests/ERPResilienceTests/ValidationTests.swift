import ERPCore
import ERPResilience
import Testing

/// One refused configuration and the message it must produce.
struct RefusedSetting: Sendable, CustomTestStringConvertible {
    var message: String
    var validate: @Sendable () throws(ResilienceConfigurationError) -> Void
    var testDescription: String { message }
}

@Suite("Settings validation")
struct ValidationTests {
    static let refused: [RefusedSetting] = [
        RefusedSetting(message: "circuitBreaker.errorThresholdPercentage must be within 0...100, got 120") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(errorThresholdPercentage: 120).validate()
        },
        RefusedSetting(message: "circuitBreaker.errorThresholdPercentage must be within 0...100, got nan") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(errorThresholdPercentage: .nan).validate()
        },
        RefusedSetting(message: "circuitBreaker.timeout must be positive, got 0s") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(timeout: .zero).validate()
        },
        RefusedSetting(message: "circuitBreaker.resetTimeout must be positive, got -5ms") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(resetTimeout: .milliseconds(-5)).validate()
        },
        RefusedSetting(message: "circuitBreaker.rollingCountTimeout must be at most 86400s, got 172800s") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(rollingCountTimeout: .seconds(172_800)).validate()
        },
        RefusedSetting(message: "circuitBreaker.rollingCountBuckets must be within 1...1000, got 0") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(rollingCountBuckets: 0).validate()
        },
        RefusedSetting(message: "circuitBreaker.rollingCountBuckets must divide circuitBreaker.rollingCountTimeout (10s) evenly, got 3") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(rollingCountBuckets: 3).validate()
        },
        RefusedSetting(message: "circuitBreaker.volumeThreshold must be within 0...2147483647, got -1") {
            () throws(ResilienceConfigurationError) in try CircuitBreakerSettings(volumeThreshold: -1).validate()
        },
        RefusedSetting(message: "retry.attemptCountMax must be within 1...100, got 0") {
            () throws(ResilienceConfigurationError) in try RetryPolicy(attemptCountMax: 0).validate()
        },
        RefusedSetting(message: "retry.baseDelay must be positive, got 0s") {
            () throws(ResilienceConfigurationError) in try RetryPolicy(baseDelay: .zero).validate()
        },
        RefusedSetting(message: "retry.maxDelay must not be shorter than retry.baseDelay (100ms), got 50ms") {
            () throws(ResilienceConfigurationError) in try RetryPolicy(maxDelay: .milliseconds(50)).validate()
        },
        RefusedSetting(message: "retry.attemptCountMax with baseDelay 100ms and maxDelay 1s must keep the retry budget "
                       + "(sum of maximum backoffs, 700ms) within the deadline 500ms, got 4") {
            () throws(ResilienceConfigurationError) in try RetryPolicy.seed.validate(against: .milliseconds(500))
        },
        RefusedSetting(message: "deadline must be positive, got 0s") {
            () throws(ResilienceConfigurationError) in try RetryPolicy.seed.validate(against: .zero)
        },
        RefusedSetting(message: "tokenBucket.capacity must be within 1...1000000, got 0") {
            () throws(ResilienceConfigurationError) in try TokenBucketSettings(capacity: 0, refillRatePerSecond: 1).validate()
        },
        RefusedSetting(message: "tokenBucket.refillRatePerSecond must be within 0.001...1000000000, got -2") {
            () throws(ResilienceConfigurationError) in try TokenBucketSettings(capacity: 1, refillRatePerSecond: -2).validate()
        },
        RefusedSetting(message: "rateLimiter.bucket.capacity must be within 1...1000000, got 0") {
            () throws(ResilienceConfigurationError) in
            try RateLimiterSettings(bucket: TokenBucketSettings(capacity: 0, refillRatePerSecond: 1)).validate()
        },
        RefusedSetting(message: "rateLimiter.keyCountMax must be within 1...1000000, got 0") {
            () throws(ResilienceConfigurationError) in
            try RateLimiterSettings(bucket: TokenBucketSettings(capacity: 1, refillRatePerSecond: 1), keyCountMax: 0).validate()
        },
        RefusedSetting(message: "nextHopMargin must not be negative, got -5ms") {
            () throws(ResilienceConfigurationError) in try CallPolicySettings(nextHopMargin: .milliseconds(-5)).validate()
        },
        RefusedSetting(message: "circuitBreaker.errorThresholdPercentage must be within 0...100, got -1") {
            () throws(ResilienceConfigurationError) in
            try CallPolicySettings(circuitBreaker: CircuitBreakerSettings(errorThresholdPercentage: -1)).validate()
        },
        RefusedSetting(message: "nextHopMargin must be shorter than the deadline 1s, got 1s") {
            () throws(ResilienceConfigurationError) in try CallPolicySettings(nextHopMargin: .seconds(1)).validate(against: .seconds(1))
        },
    ]

    @Test(arguments: refused)
    func refusedSettingsNameTheSetting(_ case_: RefusedSetting) {
        let error = configurationError(case_.validate)
        #expect(error?.description == case_.message)
    }

    @Test func seedSettingsAreValid() throws {
        try CircuitBreakerSettings.seed.validate()
        try RetryPolicy.seed.validate()
        // The seed's 5 s gRPC deadline holds the seed's 700 ms of backoff.
        try RetryPolicy.seed.validate(against: .seconds(5))
        try CallPolicySettings.seed.validate(against: .seconds(5))
        try TokenBucketSettings(capacity: 100, refillRatePerSecond: 50).validate()
        try RateLimiterSettings(bucket: TokenBucketSettings(capacity: 100, refillRatePerSecond: 50)).validate()
    }

    @Test func boundaryValuesAreAccepted() {
        #expect(configurationError { () throws(ResilienceConfigurationError) in
            try CircuitBreakerSettings(errorThresholdPercentage: 0, volumeThreshold: 0).validate()
        } == nil)
        #expect(configurationError { () throws(ResilienceConfigurationError) in
            try CircuitBreakerSettings(errorThresholdPercentage: 100, rollingCountBuckets: 1).validate()
        } == nil)
        #expect(configurationError { () throws(ResilienceConfigurationError) in
            try RetryPolicy(attemptCountMax: 1).validate(against: .nanoseconds(1))
        } == nil, "a single attempt has no backoff to fit")
        #expect(configurationError { () throws(ResilienceConfigurationError) in
            try RetryPolicy.seed.validate(against: .milliseconds(700))
        } == nil, "a budget exactly the deadline fits")
    }
}
