import Logging

/// The correlation id of the call a task is working for. Both backends run every handler inside
/// it, and tasks spawned from a handler inherit it, so every log line a service writes while
/// serving a call (or driving the saga it started) carries the id, without the service passing it.
public enum CorrelationScope {
    @TaskLocal public static var correlationId: String?

    /// Puts `correlation_id` on every log line written inside the scope.
    public static let metadataProvider = Logger.MetadataProvider {
        correlationId.map { ["correlation_id": .string($0)] } ?? [:]
    }
}
