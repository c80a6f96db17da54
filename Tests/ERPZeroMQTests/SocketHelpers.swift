import Foundation
import Testing
import ZeroMQ

// The three helpers of ZeroMQTests' TestSupport that the transport tests use (test targets cannot
// share code; these belong in a support target both depend on).

struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

struct InboxEnded: Error {}

/// The next message of `socket`, or a `TestTimeout` after `timeout`.
func receive(_ socket: ZMQSocket, within timeout: Duration = .seconds(10)) async throws -> ZMQMessage {
    let inbox = socket.messages
    return try await withThrowingTaskGroup(of: ZMQMessage?.self) { group in
        group.addTask {
            var iterator = inbox.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TestTimeout(what: "a message on \(socket)")
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let message = first else { throw InboxEnded() }
        return message
    }
}

/// Waits until `condition` holds, polling every 10 ms; false if it still does not after `timeout`.
func eventually(within timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
