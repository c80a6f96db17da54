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

/// Waits until `condition` holds, polling every 10 ms; false if it still does not after `timeout`.
public func eventually(within timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

public func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
