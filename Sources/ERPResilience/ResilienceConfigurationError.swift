/// A settings value the resilience types refuse. It names the setting by its dotted path, so a
/// scenario author can find the line to change:
/// `circuitBreaker.errorThresholdPercentage must be within 0...100, got 120`.
public struct ResilienceConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The dotted path of the refused setting, e.g. `circuitBreaker.errorThresholdPercentage`.
    public var setting: String
    /// What the setting must satisfy, e.g. `must be within 0...100`.
    public var requirement: String
    /// The refused value, as text.
    public var actual: String

    public init(setting: String, requirement: String, actual: String) {
        self.setting = setting
        self.requirement = requirement
        self.actual = actual
    }

    public var description: String { "\(setting) \(requirement), got \(actual)" }
}

/// The checks the settings types share, so that every message reads alike.
enum SettingCheck {
    /// For initialisers: loading code validates settings, so invalid ones here are a
    /// programming error, not an expected failure.
    static func require(_ what: String, _ validate: () throws(ResilienceConfigurationError) -> Void) {
        do {
            try validate()
        } catch {
            preconditionFailure("invalid \(what): \(error)")
        }
    }

    static func positive(_ value: Duration, _ setting: String) throws(ResilienceConfigurationError) {
        guard value > .zero else {
            throw ResilienceConfigurationError(setting: setting, requirement: "must be positive", actual: value.shortDescription)
        }
    }

    static func nonNegative(_ value: Duration, _ setting: String) throws(ResilienceConfigurationError) {
        guard value >= .zero else {
            throw ResilienceConfigurationError(setting: setting, requirement: "must not be negative", actual: value.shortDescription)
        }
    }

    static func atMost(_ value: Duration, _ limit: Duration, _ setting: String) throws(ResilienceConfigurationError) {
        guard value <= limit else {
            throw ResilienceConfigurationError(
                setting: setting, requirement: "must be at most \(limit.shortDescription)", actual: value.shortDescription)
        }
    }

    static func within(_ value: Int, _ range: ClosedRange<Int>, _ setting: String) throws(ResilienceConfigurationError) {
        guard range.contains(value) else {
            throw ResilienceConfigurationError(
                setting: setting, requirement: "must be within \(range.lowerBound)...\(range.upperBound)", actual: "\(value)")
        }
    }

    /// Refuses NaN too: `contains` is false for it.
    static func within(_ value: Double, _ range: ClosedRange<Double>, _ setting: String) throws(ResilienceConfigurationError) {
        guard range.contains(value) else {
            throw ResilienceConfigurationError(
                setting: setting, requirement: "must be within \(text(range.lowerBound))...\(text(range.upperBound))",
                actual: text(value))
        }
    }

    /// `120` rather than `120.0`: the way a person writes the number in a scenario file.
    static func text(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), value.magnitude < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
