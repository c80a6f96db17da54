import ERPCore

/// What is left of a call's absolute deadline, read on an injected clock.
///
/// Deadlines travel as absolute timestamps (`CallMetadata.deadline`): each hop passes on what
/// remains, never a fresh timeout, so a chain of calls cannot outlive the client that started
/// it. A server checks the budget before it begins work (`ensureNotExpired()`); a client derives
/// the deadline of its next call with `forNextHop(margin:)`.
public struct DeadlineBudget: Sendable {
    /// The absolute time by which the work must be over.
    public let deadline: Timestamp
    /// Where `now` is read: the service's clock (virtual in simulation).
    public let clock: any ServiceClock

    public init(deadline: Timestamp, clock: any ServiceClock) {
        self.deadline = deadline
        self.clock = clock
    }

    /// The budget of an incoming or outgoing call.
    public init(metadata: CallMetadata, clock: any ServiceClock) {
        self.init(deadline: metadata.deadline, clock: clock)
    }

    /// The time left; zero once the deadline has passed, never negative.
    public var remaining: Duration {
        max(.zero, deadline - clock.now)
    }

    /// True once the deadline has been reached: no work may start.
    public var isExpired: Bool {
        clock.now >= deadline
    }

    /// The deadline to pass to the next hop: this one, less `margin`, the time this hop keeps for
    /// itself to handle the answer (or its absence). It may already have passed; check it with
    /// `isExpired` on a budget for it, or let `CallPolicy` do so.
    public func forNextHop(margin: Duration = .zero) -> Timestamp {
        precondition(margin >= .zero, "a next-hop margin must not be negative")
        return deadline - margin
    }

    /// The deadline of one attempt that may take at most `timeout`: the sooner of this
    /// deadline and `now + timeout`.
    public func attemptDeadline(timeout: Duration) -> Timestamp {
        min(deadline, clock.now + timeout)
    }

    /// Throws `RPCError.deadlineExceeded` when the deadline has passed: work that starts now
    /// would answer a caller that has stopped waiting.
    public func ensureNotExpired() throws(RPCError) {
        if isExpired { throw RPCError.deadlineExceeded }
    }

    /// Rejects a request whose deadline has passed before the server begins work on it.
    public static func ensureNotExpired(_ metadata: CallMetadata, clock: any ServiceClock) throws(RPCError) {
        try DeadlineBudget(metadata: metadata, clock: clock).ensureNotExpired()
    }
}
