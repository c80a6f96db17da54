import Foundation
import Synchronization

/// At most one log line a second per kind, and how many were held back meanwhile: for lines that
/// anyone who can reach a port can cause (a refused CURVE handshake, a refused call). One Python
/// process wrote 650 such lines a second into a service's log, unthrottled.
public final class LogThrottle: Sendable {
    private struct State { var last: [String: ContinuousClock.Instant] = [:]; var held: [String: Int] = [:] }
    private let state = Mutex(State())
    private let interval: Duration

    public init(interval: Duration = .seconds(1)) { self.interval = interval }

    /// Nil when a line of `kind` was let through less than the interval ago (this one is held
    /// back and counted); else how many were held back since that line.
    public func admit(_ kind: String, now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { s in
            if let last = s.last[kind], now - last < interval { s.held[kind, default: 0] += 1; return nil }
            s.last[kind] = now
            defer { s.held[kind] = 0 }
            return s.held[kind] ?? 0
        }
    }

    /// `line`, with how many like it were held back before it, when one may be written now.
    public func line(_ kind: String, _ line: @autoclosure () -> String) -> String? {
        guard let held = admit(kind) else { return nil }
        // Held back since the last line of the kind, however long ago and whoever caused them:
        // "in the last second" put another device's refusals, 18 s earlier, on this line's
        // device (a device developer's trial).
        return line() + (held > 0 ? " (and \(held) more of this kind, from any sender, since the last such line)" : "")
    }
}
