import CZeroMQ
import DequeModule
import Foundation
import Synchronization

/// How a socket's received messages reach the caller.
public enum Delivery: Sendable {
    /// Into the socket's bounded `messages` inbox (an `AsyncSequence`), for async/await consumers.
    case stream
    /// To a handler called on the I/O thread for every message, in order. It must be quick and
    /// must not block: every socket of the thread waits while it runs. The `InlineSender` it is
    /// given sends on this socket immediately, from the I/O thread (how a REP socket answers).
    case handler(@Sendable (ZMQMessage, InlineSender) -> Void)
}

/// The one thread that owns a group of sockets. libzmq sockets are not thread safe, so every
/// libzmq call on a socket of this group — option, bind, connect, send, receive, close — runs on
/// this thread, in a `zmq_poll` loop over the sockets plus an internal wake-up socket (inproc
/// PAIR). Other threads hand it commands through a locked queue and wake it with one byte on that
/// PAIR; async callers get their answer through a continuation resumed by the I/O thread.
///
/// Start it with `IOThread.start(context:)` (a thread of its own) or `IOThread.start(context:on:)`
/// (the loop runs on a `SerialTaskExecutor`'s thread, between its jobs), open sockets with
/// `open(_:options:delivery:)`, and end it with `stop()`, which closes its sockets. Twin of the
/// simulator's in-memory network, which needs no thread because it runs on virtual time.
public final class IOThread: Sendable {
    let core: IOThreadCore

    private init(core: IOThreadCore) {
        self.core = core
    }

    /// Starts a new I/O thread on `context`.
    /// - Parameters:
    ///   - name: the OS thread name (seen in debuggers and `top -H`).
    ///   - commandCountMax: commands (sends, opens, closes) waiting for the thread; beyond it a
    ///     send fails with `commandQueueFull` instead of queueing without bound.
    ///   - pollTimeout: how long one `zmq_poll` may wait when nothing happens. The wake-up socket
    ///     makes waiting forever correct; the bound is a safety net. Passed to libzmq in
    ///     milliseconds, the unit of `zmq_poll` since libzmq 3.
    public static func start(
        context: ZMQContext,
        name: String = "zmq-io",
        commandCountMax: Int = 65_536,
        pollTimeout: Duration = .seconds(1)
    ) throws -> IOThread {
        precondition(commandCountMax >= 1)
        precondition(pollTimeout > .zero)
        let address = context.uniqueInprocAddress("wake")
        // Both ends are created here; the receiving end is handed to the new thread before it runs
        // and never touched on this thread again; the sending end lives inside the mailbox lock.
        guard let receiver = zmq_socket(context.handle, ZMQ_PAIR) else { throw ZeroMQError.last("zmq_socket(wake)") }
        guard let sender = zmq_socket(context.handle, ZMQ_PAIR) else {
            zmq_close(receiver)
            throw ZeroMQError.last("zmq_socket(wake)")
        }
        do {
            try SocketConfigurator(handle: receiver).setInt(ZMQ_LINGER, 0, "ZMQ_LINGER")
            try SocketConfigurator(handle: sender).setInt(ZMQ_LINGER, 0, "ZMQ_LINGER")
            guard zmq_bind(receiver, address) == 0, zmq_connect(sender, address) == 0 else {
                throw ZeroMQError.last("wake-up socket \(address)")
            }
        } catch {
            zmq_close(receiver)
            zmq_close(sender)
            throw error
        }
        let core = IOThreadCore(
            context: context, name: name, commandCountMax: commandCountMax,
            pollTimeoutMilliseconds: pollTimeout.millisecondsInt32, waker: .socket(sender)
        )
        let handOver = SocketHandOver(receiver)
        let thread = Thread {
            let loop = IOLoop(core: core, wakeReceiver: handOver.socket)
            loop.run()
        }
        thread.name = name
        thread.start()
        return IOThread(core: core)
    }

    /// Starts an I/O thread that runs on `executor`'s thread instead of a thread of its own: the
    /// executor polls these sockets between its jobs. A task on that executor then sends straight
    /// into the socket (`ZMQSocket.send` runs libzmq at once, with no hand-off and no wait), and
    /// `.handler` deliveries run on the executor's thread, where the continuations they resume
    /// run too. Other threads still go through the command queue. An executor may host several
    /// I/O threads (one `poll(2)` covers them all); `stop()` detaches one and leaves the
    /// executor running, `SerialTaskExecutor.shutdown()` stops it with the executor, and a
    /// terminated context closes its sockets as for a thread of its own.
    public static func start(
        context: ZMQContext,
        name: String = "zmq-io",
        on executor: SerialTaskExecutor,
        commandCountMax: Int = 65_536
    ) throws -> IOThread {
        precondition(commandCountMax >= 1)
        let core = IOThreadCore(
            context: context, name: name, commandCountMax: commandCountMax,
            pollTimeoutMilliseconds: Duration.seconds(1).millisecondsInt32, waker: .executor(executor)
        )
        try executor.host(core)
        return IOThread(core: core)
    }

    deinit {
        // No handle to this thread and no socket of it is left (each ZMQSocket holds its IOThread):
        // stop it so that its OS thread and wake-up sockets are not leaked. Refused if already stopped.
        _ = core.enqueue(.stop(nil))
    }

    /// Opens a socket of `kind` on this thread, with `options` applied before any bind or connect.
    public func open(_ kind: SocketKind, options: SocketOptions, delivery: Delivery = .stream) async throws -> ZMQSocket {
        try options.validate(for: kind)
        let id = core.nextSocketId()
        let shared = SocketShared()
        let inbox: ZMQInbox
        if case .stream = delivery, kind.canReceive {
            let core = self.core
            inbox = ZMQInbox(countMax: options.inboxCountMax) {
                // Never refused for a full queue; refused only when the thread is stopping, and
                // then the inbox is being finished anyway.
                _ = core.enqueue(.resumeReading(socketId: id))
            }
        } else {
            inbox = ZMQInbox.finished()
        }
        let socket = ZMQSocket(id: id, kind: kind, options: options, ioThread: self, shared: shared, messages: inbox)
        let request = OpenRequest(id: id, kind: kind, options: options, shared: shared, inbox: inbox, delivery: delivery)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if let error = core.enqueue(.open(request, continuation)) { continuation.resume(throwing: error) }
        }
        return socket
    }

    /// Closes every socket of this thread (their inboxes end) and ends the thread. Later commands
    /// fail with `ioThreadStopped`. Returns when the thread has closed its sockets; calling it
    /// again returns at once.
    public func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if core.enqueue(.stop(continuation)) != nil { continuation.resume() }
        }
    }

    /// Commands waiting for the thread now (a gauge for reports).
    public var queuedCommandCount: Int { core.mailbox.withLock { $0.commands.count } }
}

/// A sender usable only inside a `.handler` delivery, on the I/O thread that called it. It is not
/// `Sendable`, so the compiler keeps it from escaping to another thread; a precondition checks the
/// thread as well.
public struct InlineSender {
    unowned let loop: IOLoop
    let socketId: Int

    /// Sends `frames` as one multipart message now, with `ZMQ_DONTWAIT`; errors are counted as
    /// for `ZMQSocket.send(frames:)`.
    public func send(frames: [[UInt8]]) throws {
        try loop.sendInline(socketId: socketId, frames: frames)
    }
}

// MARK: - Shared between callers and the I/O thread

/// What a `ZMQSocket` handle and the I/O thread share: counters and whether it is closed.
final class SocketShared: Sendable {
    let counters = Locked(SocketCounters())
    let closed = Atomic<Bool>(false)
}

/// What the I/O thread needs to create a socket.
struct OpenRequest: Sendable {
    let id: Int
    let kind: SocketKind
    let options: SocketOptions
    let shared: SocketShared
    let inbox: ZMQInbox
    let delivery: Delivery
}

/// A command for the I/O thread. Each carries the continuation it resumes, if any.
enum Command: Sendable {
    case open(OpenRequest, CheckedContinuation<Void, any Error>)
    case bind(socketId: Int, endpoint: String, CheckedContinuation<String, any Error>)
    case connect(socketId: Int, endpoint: String, CheckedContinuation<Void, any Error>)
    case unbind(socketId: Int, endpoint: String, CheckedContinuation<Void, any Error>)
    case disconnect(socketId: Int, endpoint: String, CheckedContinuation<Void, any Error>)
    case send(socketId: Int, frames: [[UInt8]], CheckedContinuation<Void, any Error>)
    case readOption(socketId: Int, option: Int32, width: Int, CheckedContinuation<Int64, any Error>)
    case resumeReading(socketId: Int)
    case close(socketId: Int, CheckedContinuation<Void, Never>?)
    case stop(CheckedContinuation<Void, Never>?)

    var bypassesQueueLimit: Bool {
        switch self {
        case .stop, .close, .resumeReading: true
        default: false
        }
    }

    /// Fails the command's continuation; used for commands that never ran.
    func fail(_ error: ZeroMQError) {
        switch self {
        case .open(_, let continuation): continuation.resume(throwing: error)
        case .bind(_, _, let continuation): continuation.resume(throwing: error)
        case .connect(_, _, let continuation): continuation.resume(throwing: error)
        case .unbind(_, _, let continuation): continuation.resume(throwing: error)
        case .disconnect(_, _, let continuation): continuation.resume(throwing: error)
        case .send(_, _, let continuation): continuation.resume(throwing: error)
        case .readOption(_, _, _, let continuation): continuation.resume(throwing: error)
        case .resumeReading: break
        case .close(_, let continuation): continuation?.resume()
        case .stop(let continuation): continuation?.resume()
        }
    }
}

/// How commands wake the thread that runs an I/O loop.
enum Waker {
    /// The sending end of the loop's inproc PAIR (a thread of its own).
    case socket(UnsafeMutableRawPointer)
    /// The executor whose thread hosts the loop (it has its own wake-up pipe).
    case executor(SerialTaskExecutor)
}

/// The mailbox: commands for the I/O thread and how to wake it. A PAIR socket is touched only
/// while the lock is held, which serialises every use and gives the full memory barrier libzmq
/// asks for when a socket is used from more than one thread.
struct Mailbox {
    var commands = Deque<Command>()
    /// True when a wake-up is on its way and the thread has not yet taken the commands:
    /// coalesces wake-ups, so a burst of sends costs one byte on the PAIR (or one on the pipe).
    var wakePending = false
    var accepting = true
    var waker: Waker?
    var stoppedBecause: ZeroMQError?
}

/// The loop running a core, registered by the loop on its own thread. Lets a caller that is on
/// that thread (a task on the hosting executor, a handler) use the loop directly.
struct LoopOwner: @unchecked Sendable {
    // @unchecked Sendable: `loop` is not Sendable and is used only after checking that the
    // current thread is `thread`, the loop's own (`IOThreadCore.loopOnCurrentThread()`); on any
    // other thread only this struct is copied, the loop never touched.
    let thread: pthread_t
    let loop: IOLoop
}

/// The part of an I/O thread shared by its handle, its sockets' handles and the thread itself.
final class IOThreadCore: Sendable {
    let context: ZMQContext
    let name: String
    let commandCountMax: Int
    let pollTimeoutMilliseconds: Int32
    let mailbox: Locked<Mailbox>
    private let owner = Locked<LoopOwner?>(nil)
    private let socketIdCounter = Atomic<Int>(0)

    init(context: ZMQContext, name: String, commandCountMax: Int, pollTimeoutMilliseconds: Int32,
         waker: sending Waker) {
        self.context = context
        self.name = name
        self.commandCountMax = commandCountMax
        self.pollTimeoutMilliseconds = pollTimeoutMilliseconds
        self.mailbox = Locked(Mailbox(waker: waker))
    }

    func nextSocketId() -> Int {
        socketIdCounter.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Called by a loop on its thread when it starts (`loop`) and when it ends (nil).
    func setOwner(_ loop: IOLoop?) {
        let entry = loop.map { LoopOwner(thread: pthread_self(), loop: $0) }
        owner.withLock { $0 = entry }
    }

    /// The running loop, if the caller is on its thread; nil on every other thread.
    func loopOnCurrentThread() -> IOLoop? {
        guard let entry = owner.withLock({ $0 }), pthread_equal(entry.thread, pthread_self()) != 0 else { return nil }
        return entry.loop
    }

    /// Queues a command and wakes the thread. Returns the error instead of resuming the
    /// command's continuation, so the caller resumes it outside the lock.
    func enqueue(_ command: Command) -> ZeroMQError? {
        let (error, host): (ZeroMQError?, SerialTaskExecutor?) = mailbox.withLock { mailbox in
            guard mailbox.accepting, let waker = mailbox.waker else {
                return (mailbox.stoppedBecause
                    ?? ZeroMQError(.ioThreadStopped, message: "I/O thread \(name) is stopped"), nil)
            }
            // Stop, close and resume-reading always get in: refusing them would leak the thread or
            // a socket, or leave a drained inbox waiting forever. Each is bounded by its caller
            // (one resume per pause, one close or stop per call).
            if !command.bypassesQueueLimit && mailbox.commands.count >= commandCountMax {
                return (ZeroMQError(.commandQueueFull, message: "I/O thread \(name) has \(commandCountMax) commands waiting"), nil)
            }
            mailbox.commands.append(command)
            if mailbox.wakePending { return (nil, nil) }
            mailbox.wakePending = true
            switch waker {
            case .socket(let sender):
                // One byte. It cannot hit the PAIR's HWM: at most one is in flight (wakePending).
                // If the context is terminating it fails with ETERM, and the thread, which sees
                // ETERM from zmq_poll too, fails every queued command: nothing is lost silently.
                var byte: UInt8 = 1
                _ = zmq_send(sender, &byte, 1, ZMQ_DONTWAIT)
                return (nil, nil)
            case .executor(let executor):
                return (nil, executor)
            }
        }
        // Outside the mailbox lock: the executor takes its own.
        host?.ioCommandsArrived()
        return error
    }

    /// Takes every queued command; called by the I/O thread after its wake-up.
    func takeCommands() -> Deque<Command> {
        mailbox.withLock { mailbox in
            mailbox.wakePending = false
            let taken = mailbox.commands
            mailbox.commands = Deque()
            return taken
        }
    }

    /// Refuses every later command, closes the wake-up sender and returns the commands that
    /// never ran. Called once, by the I/O thread, when it ends.
    func close(because reason: ZeroMQError) -> Deque<Command> {
        owner.withLock { $0 = nil }
        return mailbox.withLock { mailbox in
            mailbox.accepting = false
            mailbox.stoppedBecause = reason
            if case .socket(let sender) = mailbox.waker { zmq_close(sender) }
            mailbox.waker = nil
            let taken = mailbox.commands
            mailbox.commands = Deque()
            return taken
        }
    }
}

/// Carries the wake-up receiver into the new thread.
private struct SocketHandOver: @unchecked Sendable {
    // @unchecked Sendable: the pointer is handed over exactly once, before `Thread.start()` (a full
    // memory barrier), and the creating thread never uses it afterwards; from then on only the
    // I/O thread touches the socket.
    let socket: UnsafeMutableRawPointer
    init(_ socket: UnsafeMutableRawPointer) { self.socket = socket }
}
