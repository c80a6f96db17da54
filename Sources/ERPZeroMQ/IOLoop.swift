import CZeroMQ
import DequeModule
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The body of an I/O thread. Created on that thread and never used by another: it is the only
/// code that holds libzmq socket pointers (apart from the mailbox's wake-up sender, used under
/// its lock). Not Sendable, on purpose. It runs either on a thread of its own (`run()`) or on a
/// hosting `SerialTaskExecutor`'s thread, which polls `currentPollItems()` with its own wake-up
/// and calls `dispatch`, `runCommands` and `shutdown` between its jobs; code on that thread may
/// send directly (`sendDirect`).
final class IOLoop {
    enum PollOutcome {
        /// Sockets were read; `wake` says whether the wake-up was readable.
        case polled(wake: Bool)
        /// `zmq_poll` failed (ETERM when the context terminates): call `shutdown`.
        case failed(ZeroMQError)
    }

    /// Messages read from one socket per wake-up, so one busy socket cannot starve the others.
    static let receiveBatchMax = 256

    private let core: IOThreadCore
    /// The receiving end of the loop's inproc PAIR when it has a thread of its own; nil when hosted
    /// (the hosting executor polls its own wake-up pipe beside the loop's sockets).
    private let wakeReceiver: UnsafeMutableRawPointer?
    private let ownerThread: pthread_t
    /// One reusable `zmq_msg_t` for receiving, aligned as libzmq asks (pointer size or more).
    private let frame: UnsafeMutablePointer<zmq_msg_t>
    private var sockets: [Int: LiveSocket] = [:]
    private var pollItems: [zmq_pollitem_t] = []
    private var pollTargets: [PollTarget] = []
    private var pollItemsStale = true
    private var running = true
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    private enum PollTarget { case wake, socket(Int), monitor(Int) }

    private final class LiveSocket {
        let request: OpenRequest
        let handle: UnsafeMutableRawPointer
        var monitor: UnsafeMutableRawPointer?
        var readingPaused = false
        var hasConnected = false
        init(request: OpenRequest, handle: UnsafeMutableRawPointer) {
            self.request = request
            self.handle = handle
        }
        var id: Int { request.id }
        func count(_ update: (inout SocketCounters) -> Void) { request.shared.counters.withLock { update(&$0) } }
    }

    init(core: IOThreadCore, wakeReceiver: UnsafeMutableRawPointer?) {
        self.core = core
        self.wakeReceiver = wakeReceiver
        self.ownerThread = pthread_self()
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<zmq_msg_t>.size, alignment: max(16, MemoryLayout<zmq_msg_t>.alignment)
        )
        self.frame = raw.bindMemory(to: zmq_msg_t.self, capacity: 1)
        core.setOwner(self)
    }

    var isRunning: Bool { running }
    var name: String { core.name }

    deinit {
        UnsafeMutableRawPointer(frame).deallocate()
    }

    // MARK: The loop

    /// The loop of a thread of its own.
    func run() {
        while running {
            switch pollOnce(timeoutMilliseconds: Int(core.pollTimeoutMilliseconds)) {
            case .failed(let error):
                shutdown(error)
                return
            case .polled(let woken):
                // A timeout runs the commands too: a safety net only (every command comes with a
                // wake-up byte).
                if woken || lastPollTimedOut {
                    drainWakeSocket()
                    runCommands()
                }
            }
        }
        shutdown(ZeroMQError(.ioThreadStopped, message: "I/O thread \(core.name) was stopped"))
    }

    private var lastPollTimedOut = false
    private var ready: [PollTarget] = []

    /// One `zmq_poll` over the wake-up and the sockets (at most `timeoutMilliseconds`; 0 does not
    /// wait), then reads every socket that is readable, up to `receiveBatchMax` messages each.
    private func pollOnce(timeoutMilliseconds: Int) -> PollOutcome {
        if pollItemsStale { rebuildPollItems() }
        // zmq_poll's timeout is in milliseconds (libzmq ≥ 3; it was microseconds in 2.x).
        let readyCount = zmq_poll(&pollItems, Int32(pollItems.count), timeoutMilliseconds)
        lastPollTimedOut = readyCount == 0
        if readyCount < 0 {
            let number = zmq_errno()
            if number == EINTR { return .polled(wake: false) }
            return .failed(ZeroMQError.fromErrno(number, "zmq_poll"))
        }
        if readyCount == 0 { return .polled(wake: false) }
        return .polled(wake: dispatch(pollItems[...]))
    }

    // MARK: Hosted on an executor

    /// True when the sockets to poll changed since `currentPollItems()` was last called.
    var pollItemsChanged: Bool { pollItemsStale }

    /// The items a hosting executor polls for this loop (its wake-up excluded), in the order
    /// `dispatch` expects their `revents`.
    func currentPollItems() -> [zmq_pollitem_t] {
        if pollItemsStale { rebuildPollItems() }
        return pollItems
    }

    /// Looks whether `zmq_poll` fails on this loop's sockets alone (ETERM once their context
    /// terminates), without waiting: how a host that polls several loops finds the failed one.
    func probe() -> ZeroMQError? {
        if pollItemsStale { rebuildPollItems() }
        if pollItems.isEmpty { return nil }
        while zmq_poll(&pollItems, Int32(pollItems.count), 0) < 0 {
            let number = zmq_errno()
            if number != EINTR { return ZeroMQError.fromErrno(number, "zmq_poll") }
        }
        return nil
    }

    /// Reads every socket whose item in `polled` (the `revents` of `currentPollItems()` after a
    /// poll) is readable. Returns whether the wake-up was.
    @discardableResult
    func dispatch(_ polled: ArraySlice<zmq_pollitem_t>) -> Bool {
        ready.removeAll(keepingCapacity: true)
        for (offset, item) in polled.enumerated() where item.revents & Int16(ZMQ_POLLIN) != 0 {
            ready.append(pollTargets[offset])
        }
        return serveReady()
    }

    /// For a host with work queued, instead of a `zmq_poll` without timeout: asks libzmq which
    /// sockets are readable (`ZMQ_EVENTS`, what `zmq_poll` asks after its `poll(2)`, without the
    /// system call) and reads them. Returns false if libzmq refused (ETERM): the host must then
    /// `zmq_poll`, which reports the error.
    func readReadableSockets() -> Bool {
        if pollItemsStale { rebuildPollItems() }
        ready.removeAll(keepingCapacity: true)
        for index in pollItems.indices {
            guard let socket = pollItems[index].socket else { continue }
            var events: Int32 = 0
            var length = MemoryLayout<Int32>.size
            guard zmq_getsockopt(socket, ZMQ_EVENTS, &events, &length) == 0 else {
                if zmq_errno() == EINTR { continue }
                return false
            }
            if events & Int32(ZMQ_POLLIN) != 0 { ready.append(pollTargets[index]) }
        }
        serveReady()
        return true
    }

    /// Serves `ready`. Returns whether the wake-up was among them.
    @discardableResult
    private func serveReady() -> Bool {
        var woken = false
        for target in ready {
            switch target {
            case .wake:
                woken = true
            case .socket(let id):
                if let live = sockets[id] { receive(live) }
            case .monitor(let id):
                if let live = sockets[id] { readMonitor(live) }
            }
        }
        return woken
    }

    private func rebuildPollItems() {
        pollItems.removeAll(keepingCapacity: true)
        pollTargets.removeAll(keepingCapacity: true)
        if let wakeReceiver {
            pollItems.append(zmq_pollitem_t(socket: wakeReceiver, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
            pollTargets.append(.wake)
        }
        for live in sockets.values.sorted(by: { $0.id < $1.id }) {
            if live.request.kind.canReceive && !live.readingPaused {
                pollItems.append(zmq_pollitem_t(socket: live.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
                pollTargets.append(.socket(live.id))
            }
            if let monitor = live.monitor {
                pollItems.append(zmq_pollitem_t(socket: monitor, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
                pollTargets.append(.monitor(live.id))
            }
        }
        pollItemsStale = false
    }

    private func drainWakeSocket() {
        guard let receiver = wakeReceiver else { return }
        var byte: UInt8 = 0
        while zmq_recv(receiver, &byte, 1, ZMQ_DONTWAIT) >= 0 {}
        // EAGAIN: drained. ETERM: zmq_poll reports it next and the loop ends there.
    }

    /// Runs the queued commands (a hosting executor calls it when told commands arrived).
    func runCommands() {
        for command in core.takeCommands() {
            if running {
                execute(command)
            } else {
                // A stop came earlier in this batch: nothing after it runs.
                command.fail(ZeroMQError(.ioThreadStopped, message: "I/O thread \(core.name) is stopping"))
            }
        }
    }

    /// Closes every socket, refuses later commands, fails those that never ran, and wakes `stop()`.
    func shutdown(_ reason: ZeroMQError) {
        running = false
        for id in Array(sockets.keys) { closeSocket(id) }
        if let wakeReceiver { zmq_close(wakeReceiver) }
        let stopped = ZeroMQError(.ioThreadStopped, message: "I/O thread \(core.name) stopped: \(reason)")
        for command in core.close(because: stopped) { command.fail(stopped) }
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters.removeAll()
    }

    // MARK: Commands

    private func execute(_ command: Command) {
        switch command {
        case .open(let request, let continuation):
            do {
                try openSocket(request)
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        case .bind(let id, let endpoint, let continuation):
            continuation.resume(with: Result { try bind(socket(id), endpoint) })
        case .connect(let id, let endpoint, let continuation):
            continuation.resume(with: Result { try connect(socket(id), endpoint) })
        case .unbind(let id, let endpoint, let continuation):
            continuation.resume(with: Result {
                let live = try socket(id)
                if zmq_unbind(live.handle, endpoint) != 0 { throw ZeroMQError.last("zmq_unbind \(endpoint)") }
            })
        case .disconnect(let id, let endpoint, let continuation):
            continuation.resume(with: Result {
                let live = try socket(id)
                if zmq_disconnect(live.handle, endpoint) != 0 { throw ZeroMQError.last("zmq_disconnect \(endpoint)") }
            })
        case .send(let id, let frames, let continuation):
            continuation.resume(with: Result {
                let live = try socket(id)
                if let error = send(live, frames) { throw error }
            })
        case .readOption(let id, let option, let width, let continuation):
            continuation.resume(with: Result { try readOption(socket(id), option, width: width) })
        case .resumeReading(let id):
            if let live = sockets[id], live.readingPaused {
                live.readingPaused = false
                pollItemsStale = true
            }
        case .close(let id, let continuation):
            closeSocket(id)
            continuation?.resume()
        case .stop(let continuation):
            running = false
            if let continuation { stopWaiters.append(continuation) }
        }
    }

    private func socket(_ id: Int) throws -> LiveSocket {
        guard let live = sockets[id] else {
            throw ZeroMQError(.socketClosed, message: "socket #\(id) is closed")
        }
        return live
    }

    private func openSocket(_ request: OpenRequest) throws {
        if case .curveServer = request.options.security, !core.context.hasAuthenticator {
            throw ZeroMQError(.authenticatorMissing, message:
                "a CURVE server needs a ZAPAuthenticator on its context, or it would admit any client key")
        }
        guard let handle = zmq_socket(core.context.handle, request.kind.rawType) else {
            throw ZeroMQError.last("zmq_socket(\(request.kind))")
        }
        let live = LiveSocket(request: request, handle: handle)
        do {
            try SocketConfigurator(handle: handle).apply(request.options, kind: request.kind)
            try attachMonitor(live)
        } catch {
            if let monitor = live.monitor { zmq_close(monitor) }
            zmq_close(handle)
            throw error
        }
        sockets[request.id] = live
        pollItemsStale = true
    }

    private func attachMonitor(_ live: LiveSocket) throws {
        let address = core.context.uniqueInprocAddress("monitor")
        let events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED
            | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        guard zmq_socket_monitor(live.handle, address, events) == 0 else {
            throw ZeroMQError.last("zmq_socket_monitor")
        }
        guard let monitor = zmq_socket(core.context.handle, ZMQ_PAIR) else {
            throw ZeroMQError.last("zmq_socket(monitor)")
        }
        live.monitor = monitor
        try SocketConfigurator(handle: monitor).setInt(ZMQ_LINGER, 0, "ZMQ_LINGER")
        guard zmq_connect(monitor, address) == 0 else { throw ZeroMQError.last("zmq_connect(monitor)") }
    }

    private func closeSocket(_ id: Int) {
        guard let live = sockets.removeValue(forKey: id) else { return }
        if let monitor = live.monitor {
            // Stops libzmq's side of the monitor before our end goes away. Fails only with ETERM,
            // when libzmq is tearing the monitor down itself.
            _ = zmq_socket_monitor(live.handle, nil, 0)
            zmq_close(monitor)
        }
        // With ZMQ_LINGER 0 this drops unsent messages at once; it fails only for a bad pointer.
        let closed = zmq_close(live.handle)
        precondition(closed == 0, "zmq_close: \(ZeroMQError.last("zmq_close"))")
        live.request.shared.closed.store(true, ordering: .releasing)
        live.request.inbox.finish()
        pollItemsStale = true
    }

    private func bind(_ live: LiveSocket, _ endpoint: String) throws -> String {
        guard zmq_bind(live.handle, endpoint) == 0 else { throw ZeroMQError.last("zmq_bind \(endpoint)") }
        var buffer = [CChar](repeating: 0, count: 1024)
        var length = buffer.count
        guard zmq_getsockopt(live.handle, ZMQ_LAST_ENDPOINT, &buffer, &length) == 0 else {
            throw ZeroMQError.last("zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func connect(_ live: LiveSocket, _ endpoint: String) throws {
        if !live.hasConnected && live.request.options.immediate == nil {
            // The default for sockets that connect: queue only to completed connections, so a
            // send to a peer that is not (yet) there fails at once instead of waiting in a pipe.
            try SocketConfigurator(handle: live.handle).setInt(ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE")
        }
        guard zmq_connect(live.handle, endpoint) == 0 else { throw ZeroMQError.last("zmq_connect \(endpoint)") }
        live.hasConnected = true
    }

    private func readOption(_ live: LiveSocket, _ option: Int32, width: Int) throws -> Int64 {
        if width == 8 {
            var value: Int64 = 0
            var length = MemoryLayout<Int64>.size
            guard zmq_getsockopt(live.handle, option, &value, &length) == 0 else { throw ZeroMQError.last("zmq_getsockopt(\(option))") }
            return value
        }
        var value: Int32 = 0
        var length = MemoryLayout<Int32>.size
        guard zmq_getsockopt(live.handle, option, &value, &length) == 0 else { throw ZeroMQError.last("zmq_getsockopt(\(option))") }
        return Int64(value)
    }

    // MARK: Sending

    /// Sends from a `.handler` delivery, on this thread.
    func sendInline(socketId: Int, frames: [[UInt8]]) throws {
        precondition(pthread_equal(pthread_self(), ownerThread) != 0, "InlineSender used off its I/O thread")
        guard !frames.isEmpty else {
            throw ZeroMQError(.invalidArgument, message: "a message has at least one frame")
        }
        try sendDirect(socketId: socketId, frames: frames)
    }

    /// Sends now, on the loop's own thread (`ZMQSocket.send` from a task of the hosting executor):
    /// the same `send` as a queued command, errors counted the same way, without the hand-off.
    func sendDirect(socketId: Int, frames: [[UInt8]]) throws {
        precondition(pthread_equal(pthread_self(), ownerThread) != 0, "direct send off its I/O thread")
        guard running else { throw ZeroMQError(.ioThreadStopped, message: "I/O thread \(core.name) is stopping") }
        let live = try socket(socketId)
        if let error = send(live, frames) { throw error }
    }

    /// Sends one multipart message with `ZMQ_DONTWAIT`, counting the outcome. Returns the error.
    private func send(_ live: LiveSocket, _ frames: [[UInt8]]) -> ZeroMQError? {
        var byteCount = 0
        for (index, frame) in frames.enumerated() {
            let flags = ZMQ_DONTWAIT | (index < frames.count - 1 ? ZMQ_SNDMORE : 0)
            var result: Int32
            var number: Int32 = 0
            repeat {
                result = frame.withUnsafeBytes { zmq_send(live.handle, $0.baseAddress, $0.count, flags) }
                if result < 0 { number = zmq_errno() }
            } while result < 0 && number == EINTR
            if result < 0 {
                let error = ZeroMQError.fromErrno(number, "zmq_send to \(live.request.kind) #\(live.id)")
                // libzmq decides routing and HWM on the first frame; once it is taken the others
                // are too. A later frame failing would leave half a message in the pipe, glued to
                // the next one: only a terminating context may do that.
                precondition(index == 0 || error.code == .contextTerminated, "frame \(index) refused: \(error)")
                live.count { counters in
                    switch error.code {
                    case .unroutable: counters.unroutable += 1
                    case .highWaterMark: counters.highWaterMarkDrops += 1
                    default: counters.sendFailures += 1
                    }
                }
                return error
            }
            byteCount += frame.count
        }
        live.count { counters in
            counters.messagesSent += 1
            counters.bytesSent += byteCount
        }
        return nil
    }

    // MARK: Receiving

    private enum Received { case message(ZMQMessage), nothing, failure(ZeroMQError) }

    /// Receives one whole multipart message with `zmq_msg_recv` (no fixed buffer, so nothing is
    /// truncated), following `ZMQ_RCVMORE` to the last frame.
    private func receiveMessage(_ handle: UnsafeMutableRawPointer) -> Received {
        var frames: [[UInt8]] = []
        while true {
            zmq_msg_init(frame)
            var result: Int32
            var number: Int32 = 0
            repeat {
                result = zmq_msg_recv(frame, handle, ZMQ_DONTWAIT)
                if result < 0 { number = zmq_errno() }
            } while result < 0 && number == EINTR
            if result < 0 {
                zmq_msg_close(frame)
                // A message arrives whole or not at all, so EAGAIN after its first frame would be
                // a libzmq bug; report it rather than deliver half a message.
                if number == EAGAIN && frames.isEmpty { return .nothing }
                return .failure(ZeroMQError.fromErrno(number, "zmq_msg_recv"))
            }
            let size = zmq_msg_size(frame)
            frames.append([UInt8](UnsafeRawBufferPointer(start: zmq_msg_data(frame), count: size)))
            zmq_msg_close(frame)
            var more: Int32 = 0
            var length = MemoryLayout<Int32>.size
            guard zmq_getsockopt(handle, ZMQ_RCVMORE, &more, &length) == 0 else {
                return .failure(ZeroMQError.last("zmq_getsockopt(ZMQ_RCVMORE)"))
            }
            if more == 0 { return .message(ZMQMessage(frames: frames)) }
        }
    }

    private func receive(_ live: LiveSocket) {
        if live.readingPaused { return }
        for _ in 0..<Self.receiveBatchMax {
            switch receiveMessage(live.handle) {
            case .nothing:
                return
            case .failure:
                // Counted, not thrown: there is no caller to throw to. ETERM also lands here, and
                // zmq_poll reports it next, which ends the loop.
                live.count { $0.receiveFailures += 1 }
                return
            case .message(let message):
                live.count { counters in
                    counters.messagesReceived += 1
                    counters.bytesReceived += message.byteCount
                }
                switch live.request.delivery {
                case .stream:
                    if !live.request.inbox.offer(message) {
                        live.readingPaused = true
                        live.count { $0.inboxFullPauses += 1 }
                        pollItemsStale = true
                        return
                    }
                case .handler(let handler):
                    handler(message, InlineSender(loop: self, socketId: live.id))
                    // The handler may not close sockets, but be safe if one went away.
                    if sockets[live.id] == nil { return }
                }
            }
        }
    }

    // MARK: Monitor events

    private func readMonitor(_ live: LiveSocket) {
        guard let monitor = live.monitor else { return }
        for _ in 0..<Self.receiveBatchMax {
            guard case .message(let message) = receiveMessage(monitor) else { return }
            // Frame 1: 16-bit event number and 32-bit value, in host order; frame 2: endpoint.
            guard let header = message.frames.first, header.count >= 6 else { continue }
            let event = Int32(header.withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) })
            live.count { counters in
                switch event {
                case ZMQ_EVENT_CONNECTED, ZMQ_EVENT_ACCEPTED: counters.connections += 1
                case ZMQ_EVENT_DISCONNECTED: counters.disconnects += 1
                case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: counters.handshakesSucceeded += 1
                case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: counters.authenticationFailures += 1
                case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: counters.handshakeFailures += 1
                default: break
                }
            }
        }
    }
}
