import DequeModule

/// The received messages of one socket, as an `AsyncSequence` for a single consumer.
///
/// Bounded: it holds at most `countMax` messages. When it is full the I/O thread stops polling the
/// socket for input; once the consumer has drained it to half, reading resumes. So a slow consumer
/// pushes back through libzmq's `ZMQ_RCVHWM` and TCP onto the sender (whose sends then fail with
/// `highWaterMark`, counted) instead of the process buffering without limit or dropping silently.
///
/// Iteration ends (`nil`) when the socket is closed, its I/O thread stops or the context is
/// terminated, after the messages already held have been consumed. One consumer at a time: two
/// tasks awaiting `next()` together is a programming error (a precondition).
public final class ZMQInbox: AsyncSequence, Sendable {
    public typealias Element = ZMQMessage

    let countMax: Int
    private let resumeCount: Int
    private let state: Locked<State>
    /// Called (on the consumer's thread) when a paused inbox has room again: asks the I/O thread
    /// to poll the socket for input again.
    private let onRoomAvailable: @Sendable () -> Void

    private struct State {
        var buffer = Deque<ZMQMessage>()
        var waiter: CheckedContinuation<ZMQMessage?, Never>?
        var finished = false
        var readingPaused = false
    }

    init(countMax: Int, onRoomAvailable: @escaping @Sendable () -> Void) {
        precondition(countMax >= 1, "inboxCountMax must be at least 1")
        self.countMax = countMax
        self.resumeCount = countMax / 2
        self.state = Locked(State())
        self.onRoomAvailable = onRoomAvailable
    }

    /// An inbox that is already finished: for sockets whose messages go to a handler, or that
    /// cannot receive (PUSH).
    static func finished() -> ZMQInbox {
        let inbox = ZMQInbox(countMax: 1, onRoomAvailable: {})
        inbox.finish()
        return inbox
    }

    /// The number of messages waiting for the consumer.
    public var count: Int { state.withLock { $0.buffer.count } }

    // MARK: I/O thread side

    /// Hands a message to the consumer. Returns false when the inbox is now full: the I/O thread
    /// must stop reading this socket until `onRoomAvailable` asks it to resume.
    func offer(_ message: ZMQMessage) -> Bool {
        let (waiter, hasRoom): (CheckedContinuation<ZMQMessage?, Never>?, Bool) = state.withLock { state in
            // After finish nothing more is received (the socket is closed first), so this is only
            // reachable by a broken invariant.
            precondition(!state.finished, "message offered to a finished inbox")
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, true)
            }
            state.buffer.append(message)
            if state.buffer.count >= countMax {
                state.readingPaused = true
                return (nil, false)
            }
            return (nil, true)
        }
        waiter?.resume(returning: message)
        return hasRoom
    }

    /// Ends the sequence once the held messages are consumed.
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    // MARK: Consumer side

    func next() async -> ZMQMessage? {
        enum Immediate { case message(ZMQMessage, resumeReading: Bool), end, wait }
        let immediate: Immediate = state.withLock { state in
            if let (message, resumeReading) = take(&state) { return .message(message, resumeReading: resumeReading) }
            return state.finished ? .end : .wait
        }
        switch immediate {
        case .message(let message, let resumeReading):
            if resumeReading { onRoomAvailable() }
            return message
        case .end:
            return nil
        case .wait:
            break
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ZMQMessage?, Never>) in
                // Decided under the lock, and the cancellation handler takes the same lock: either
                // it sees the waiter installed, or we see the task already cancelled.
                let outcome: (message: ZMQMessage?, resumeReading: Bool)? = state.withLock { state in
                    if let (message, resumeReading) = take(&state) { return (message, resumeReading) }
                    if state.finished || Task.isCancelled { return (nil, false) }
                    precondition(state.waiter == nil, "ZMQInbox has a single consumer")
                    state.waiter = continuation
                    return nil
                }
                if let outcome {
                    if outcome.resumeReading { onRoomAvailable() }
                    continuation.resume(returning: outcome.message)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Pops the oldest message; says whether the I/O thread must be asked to read again.
    private func take(_ state: inout State) -> (ZMQMessage, Bool)? {
        guard let message = state.buffer.popFirst() else { return nil }
        if state.readingPaused && state.buffer.count <= resumeCount {
            state.readingPaused = false
            return (message, true)
        }
        return (message, false)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let inbox: ZMQInbox
        public mutating func next() async -> ZMQMessage? { await inbox.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbox: self) }
}
