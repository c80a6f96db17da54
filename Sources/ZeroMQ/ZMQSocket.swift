import CZeroMQ

/// A handle on one libzmq socket owned by an `IOThread`. The handle may be used from any thread
/// or task: every method hands a command to the I/O thread, which alone touches the socket —
/// except `send` called on that thread itself (a task of the executor hosting the I/O thread),
/// which sends at once.
///
/// Keep the handle while you use the socket; `close()` it when done (or `stop()` the thread).
public final class ZMQSocket: Sendable, CustomStringConvertible {
    /// Unique within the process.
    public let id: Int
    public let kind: SocketKind
    public let options: SocketOptions
    /// The I/O thread that owns the socket; held so that the thread outlives every handle.
    public let ioThread: IOThread
    /// Received messages, for `.stream` delivery. For `.handler` delivery and for PUSH sockets
    /// this sequence is empty (it ends at once).
    public let messages: ZMQInbox
    let shared: SocketShared

    init(id: Int, kind: SocketKind, options: SocketOptions, ioThread: IOThread, shared: SocketShared, messages: ZMQInbox) {
        self.id = id
        self.kind = kind
        self.options = options
        self.ioThread = ioThread
        self.shared = shared
        self.messages = messages
    }

    public var description: String { "ZMQSocket(\(kind) #\(id))" }

    /// A snapshot of the socket's counters.
    public var counters: SocketCounters { shared.counters.withLock { $0 } }

    /// True once the socket is closed (by `close()`, `IOThread.stop()` or context termination).
    public var isClosed: Bool { shared.closed.load(ordering: .acquiring) }

    /// Binds to `endpoint` and returns the endpoint actually bound (`ZMQ_LAST_ENDPOINT`): bind
    /// `tcp://127.0.0.1:*` and read the port from the answer.
    @discardableResult
    public func bind(_ endpoint: String) async throws -> String {
        try await perform { .bind(socketId: id, endpoint: endpoint, $0) }
    }

    /// Connects to `endpoint`. The connection is made in the background by libzmq and re-made
    /// after a loss, with the backoff of `reconnectInterval`…`reconnectIntervalMax`.
    public func connect(_ endpoint: String) async throws {
        try await perform { .connect(socketId: id, endpoint: endpoint, $0) }
    }

    public func unbind(_ endpoint: String) async throws {
        try await perform { .unbind(socketId: id, endpoint: endpoint, $0) }
    }

    public func disconnect(_ endpoint: String) async throws {
        try await perform { .disconnect(socketId: id, endpoint: endpoint, $0) }
    }

    /// Sends one multipart message, without blocking (`ZMQ_DONTWAIT`). Returns once libzmq has
    /// accepted the message into its queue — not when the peer has it. On the socket's own thread
    /// (see `IOThread.start(context:on:)`) it calls libzmq directly and never suspends.
    /// - Throws: `ZeroMQError` with `unroutable` (ROUTER: unknown routing id), `highWaterMark`
    ///   (over the HWM or no connected peer), `invalidState`, `socketClosed`, `commandQueueFull`,
    ///   `ioThreadStopped`… Every failure is also counted in `counters`.
    public func send(frames: [[UInt8]]) async throws {
        guard !frames.isEmpty else {
            shared.counters.withLock { $0.sendFailures += 1 }
            throw ZeroMQError(.invalidArgument, message: "a message has at least one frame")
        }
        do {
            if let loop = ioThread.core.loopOnCurrentThread() {
                // On the socket's own thread (a task of the executor hosting the I/O thread): send
                // now, no hand-off and no suspension; the error, if any, is synchronous.
                try loop.sendDirect(socketId: id, frames: frames)
            } else {
                try await perform { .send(socketId: id, frames: frames, $0) }
            }
        } catch let error as ZeroMQError where error.code == .commandQueueFull || error.code == .ioThreadStopped
            || error.code == .socketClosed {
            // The I/O thread never ran this send (or no longer had the socket), so it could not
            // count it: count it here. Every other error was counted by the I/O thread.
            shared.counters.withLock { $0.sendFailures += 1 }
            throw error
        }
    }

    public func send(_ message: ZMQMessage) async throws {
        try await send(frames: message.frames)
    }

    /// Closes the socket (`ZMQ_LINGER` applies: 0 by default, so unsent messages are dropped now)
    /// and ends `messages`. Idempotent.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if ioThread.core.enqueue(.close(socketId: id, continuation)) != nil { continuation.resume() }
        }
    }

    /// Reads an integer socket option (`width` 4 for `int`, 8 for `int64_t`), on the I/O thread.
    /// For diagnostics and tests; the options are set from `SocketOptions`.
    public func integerOption(_ option: Int32, width: Int = 4) async throws -> Int64 {
        precondition(width == 4 || width == 8)
        return try await perform { .readOption(socketId: id, option: option, width: width, $0) }
    }

    private func perform<T: Sendable>(_ command: (CheckedContinuation<T, any Error>) -> Command) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            if let error = ioThread.core.enqueue(command(continuation)) { continuation.resume(throwing: error) }
        }
    }
}

extension ZMQSocket {
    /// The next received message (`.stream` delivery), or nil when none came within `timeout` or
    /// the inbox has ended. A message that arrives after the timeout stays for the next call.
    public func receive(within timeout: Duration) async -> ZMQMessage? {
        let inbox = messages
        return await withTaskGroup(of: ZMQMessage?.self) { group in
            group.addTask {
                var iterator = inbox.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
    }
}
