// ZeroMQTestSupport: helpers the wrapper's tests and the ZeroMQ backend's tests share. Imports
// only the wrapper; linked only by test targets.
import Foundation
import ZeroMQ

public struct TestTimeout: Error, CustomStringConvertible {
    public var what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for \(what)" }
}

public struct InboxEnded: Error {
    public init() {}
}

/// The next message of `socket`, or a `TestTimeout` after `timeout`.
public func receive(_ socket: ZMQSocket, within timeout: Duration = .seconds(10)) async throws -> ZMQMessage {
    let started = ContinuousClock.now
    guard let message = await socket.receive(within: timeout) else {
        if ContinuousClock.now - started < timeout { throw InboxEnded() }
        throw TestTimeout(what: "a message on \(socket)")
    }
    return message
}

/// Waits until `condition` holds, polling every 10 ms; false if it still does not after `timeout`
/// of polling.
///
/// The whole suite shares one process and its cooperative pool, which has as many threads as the
/// machine has cores (two here), and many tests hold a thread for seconds (a simulation run, a
/// harness waiting for its nodes). What the condition waits for may be a task on that pool too,
/// so the wall clock alone would fail a test whose work merely had no thread to run on: a poll
/// that wakes late counts for at most 50 ms against `timeout`, the rest of its delay being time
/// in which nothing of this test could run.
public func eventually(within timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    var left = timeout
    var last = ContinuousClock.now
    while left > .zero {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
        let now = ContinuousClock.now
        left -= min(now - last, .milliseconds(50))
        last = now
    }
    return condition()
}

public func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
