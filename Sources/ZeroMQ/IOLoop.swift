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

    enum PollTarget { case wake, socket(Int), monitor(Int) }

    private final class LiveSocket {
        let request: OpenRequest
        let handle: UnsafeMutableRawPointer
        var monitor: UnsafeMutableRawPointer?
        var readingPaused = false
        var hasConnected = false
        /// `ZMQ_FD` of the socket and of its monitor (-1 until read): readable when libzmq has
        /// commands for the socket, which may mean messages (hosted mode polls these).
        var descriptor: Int32 = -1
        var monitorDescriptor: Int32 = -1
        /// Hosted mode: the socket (its monitor) must be read until EAGAIN before the host sleeps.
        var readPending = false
        var monitorReadPending = false
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

    /// A descriptor the hosting executor polls with `poll(2)` for this loop, and what it stands for.
    struct HostedDescriptor {
        var fd: Int32
        var target: PollTarget
    }

    /// Hosted mode: sockets (and monitors) to read before the host may sleep, in the order they
    /// became due. A socket is due when its descriptor was readable, and after every other use of
    /// it (send, bind, connect, open): libzmq reads a socket's pending commands during any call on
    /// it, which consumes the descriptor's signal, so only a read that ends in EAGAIN proves that
    /// nothing waits. This is libzmq's documented `ZMQ_FD` contract (edge-triggered, re-checked
    /// after each operation), and it replaces a `zmq_poll` per turn, which asks every socket for
    /// `ZMQ_EVENTS` (a `poll(2)` and a `getpid(2)` each) before and after its own `poll(2)`.
    private var dueReads: [PollTarget] = []
    private var hostedDescriptorsStale = true

    /// True when some socket must be read before the host sleeps.
    var hasDueReads: Bool { !dueReads.isEmpty }

    /// True when the descriptors to poll changed since `hostedDescriptors()` was last called.
    var descriptorsChanged: Bool { hostedDescriptorsStale }

    /// The descriptors a hosting executor polls for this loop: each readable socket's `ZMQ_FD`
    /// (unless its reading is paused) and each monitor's.
    func hostedDescriptors() -> [HostedDescriptor] {
        hostedDescriptorsStale = false
        var result: [HostedDescriptor] = []
        for live in sockets.values.sorted(by: { $0.id < $1.id }) {
            if live.request.kind.canReceive && !live.readingPaused && live.descriptor >= 0 {
                result.append(HostedDescriptor(fd: live.descriptor, target: .socket(live.id)))
            }
            if live.monitorDescriptor >= 0 {
                result.append(HostedDescriptor(fd: live.monitorDescriptor, target: .monitor(live.id)))
            }
        }
        return result
    }

    /// The host saw `target`'s descriptor readable.
    func descriptorReadable(_ target: PollTarget) {
        guard let live = socketOf(target) else { return }
        switch target {
        case .socket: markReadDue(live)
        case .monitor: markMonitorReadDue(live)
        case .wake: break
        }
    }

    /// Reads every due socket until EAGAIN, at most `limit` messages each (a socket left with
    /// more stays due). Returns the error when libzmq refuses because the context is terminating:
    /// the host then shuts this loop down.
    ///
    /// A host that just woke for a message passes a limit of 1: the message's handler and the
    /// jobs it starts run at once, and the read that proves the socket empty comes in the next
    /// turn, where it also covers the sends those jobs made (one `EAGAIN` read instead of two,
    /// and none on the way from request to reply).
    func readDueSockets(limit: Int = IOLoop.receiveBatchMax) -> ZeroMQError? {
        guard !dueReads.isEmpty else { return nil }
        let batch = dueReads
        dueReads.removeAll(keepingCapacity: true)
        for target in batch {
            guard let live = socketOf(target) else { continue }
            let outcome: ReadOutcome
            switch target {
            case .socket:
                live.readPending = false
                outcome = receive(live, limit: limit)
                if case .more = outcome { markReadDue(live) }
            case .monitor:
                live.monitorReadPending = false
                outcome = readMonitor(live)
                if case .more = outcome { markMonitorReadDue(live) }
            case .wake:
                continue
            }
            if case .failed(let error) = outcome, error.code == .contextTerminated { return error }
        }
        return nil
    }

    private func socketOf(_ target: PollTarget) -> LiveSocket? {
        switch target {
        case .socket(let id), .monitor(let id): sockets[id]
        case .wake: nil
        }
    }

    private func markReadDue(_ live: LiveSocket) {
        guard !live.readPending, !live.readingPaused, live.request.kind.canReceive else { return }
        live.readPending = true
        dueReads.append(.socket(live.id))
    }

    private func markMonitorReadDue(_ live: LiveSocket) {
        guard !live.monitorReadPending, live.monitor != nil else { return }
        live.monitorReadPending = true
        dueReads.append(.monitor(live.id))
    }

    /// Reads every socket whose item in `polled` (the `revents` of `pollItems` after a poll) is
    /// readable. Returns whether the wake-up was.
    private func dispatch(_ polled: ArraySlice<zmq_pollitem_t>) -> Bool {
        ready.removeAll(keepingCapacity: true)
        for (offset, item) in polled.enumerated() where item.revents & Int16(ZMQ_POLLIN) != 0 {
            ready.append(pollTargets[offset])
        }
        return serveReady()
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
                if let live = sockets[id] { _ = receive(live) }
            case .monitor(let id):
                if let live = sockets[id] { _ = readMonitor(live) }
            }
        }
        return woken
    }

    /// The set of sockets to poll, or their readability, changed.
    private func socketsChanged() {
        pollItemsStale = true
        hostedDescriptorsStale = true
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
                // libzmq reads the socket's commands here too (see `dueReads`).
                defer { markReadDue(live) }
                if zmq_unbind(live.handle, endpoint) != 0 { throw ZeroMQError.last("zmq_unbind \(endpoint)") }
            })
        case .disconnect(let id, let endpoint, let continuation):
            continuation.resume(with: Result {
                let live = try socket(id)
                defer { markReadDue(live) }
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
                socketsChanged()
                markReadDue(live)
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
        live.descriptor = Self.descriptor(of: handle)
        if let monitor = live.monitor { live.monitorDescriptor = Self.descriptor(of: monitor) }
        sockets[request.id] = live
        socketsChanged()
        markReadDue(live)
        markMonitorReadDue(live)
    }

    /// The socket's `ZMQ_FD` (an `int` on POSIX), or -1 if libzmq will not say.
    private static func descriptor(of handle: UnsafeMutableRawPointer) -> Int32 {
        var fd: Int32 = -1
        var length = MemoryLayout<Int32>.size
        return zmq_getsockopt(handle, ZMQ_FD, &fd, &length) == 0 ? fd : -1
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
        socketsChanged()
    }

    private func bind(_ live: LiveSocket, _ endpoint: String) throws -> String {
        defer { markReadDue(live); markMonitorReadDue(live) }
        guard zmq_bind(live.handle, endpoint) == 0 else { throw ZeroMQError.last("zmq_bind \(endpoint)") }
        var buffer = [CChar](repeating: 0, count: 1024)
        var length = buffer.count
        guard zmq_getsockopt(live.handle, ZMQ_LAST_ENDPOINT, &buffer, &length) == 0 else {
            throw ZeroMQError.last("zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func connect(_ live: LiveSocket, _ endpoint: String) throws {
        defer { markReadDue(live); markMonitorReadDue(live) }
        if !live.hasConnected && live.request.options.immediate == nil {
            // The default for sockets that connect: queue only to completed connections, so a
            // send to a peer that is not (yet) there fails at once instead of waiting in a pipe.
            try SocketConfigurator(handle: live.handle).setInt(ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE")
        }
        guard zmq_connect(live.handle, endpoint) == 0 else { throw ZeroMQError.last("zmq_connect \(endpoint)") }
        live.hasConnected = true
    }

    private func readOption(_ live: LiveSocket, _ option: Int32, width: Int) throws -> Int64 {
        // ZMQ_EVENTS, for one, reads the socket's commands (see `dueReads`).
        defer { markReadDue(live) }
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
        // libzmq may have read the socket's commands (and the descriptor's signal) meanwhile.
        defer { markReadDue(live) }
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
    private func receiveMessage(_ handle: UnsafeMutableRawPointer, readsUserId: Bool = false) -> Received {
        var frames: [[UInt8]] = []
        var userId: String?
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
            // A ROUTER's messages have two frames or more: one allocation, not one per frame
            // (and none when there is nothing to read).
            if frames.isEmpty { frames.reserveCapacity(4) }
            // Not on a ROUTER's first frame (the routing id it adds): on the frames from the wire.
            if readsUserId && userId == nil, let property = zmq_msg_gets(frame, "User-Id") { userId = String(cString: property) }
            frames.append([UInt8](UnsafeRawBufferPointer(start: zmq_msg_data(frame), count: size)))
            zmq_msg_close(frame)
            var more: Int32 = 0
            var length = MemoryLayout<Int32>.size
            guard zmq_getsockopt(handle, ZMQ_RCVMORE, &more, &length) == 0 else {
                return .failure(ZeroMQError.last("zmq_getsockopt(ZMQ_RCVMORE)"))
            }
            if more == 0 { return .message(ZMQMessage(frames: frames, userId: userId)) }
        }
    }

    enum ReadOutcome {
        /// Read until EAGAIN (or reading paused): nothing waits.
        case drained
        /// Stopped at `receiveBatchMax` messages: more may wait.
        case more
        /// libzmq refused (counted); ETERM means the context is terminating.
        case failed(ZeroMQError)
    }

    private func receive(_ live: LiveSocket, limit: Int = IOLoop.receiveBatchMax) -> ReadOutcome {
        if live.readingPaused { return .drained }
        for _ in 0..<limit {
            switch receiveMessage(live.handle, readsUserId: live.request.options.readsUserId) {
            case .nothing:
                return .drained
            case .failure(let error):
                // Counted, not thrown: there is no caller to throw to. ETERM also lands here; the
                // poll (or the host, told by the outcome) then ends the loop.
                live.count { $0.receiveFailures += 1 }
                return .failed(error)
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
                        socketsChanged()
                        return .drained
                    }
                case .handler(let handler):
                    handler(message, InlineSender(loop: self, socketId: live.id))
                    // The handler may not close sockets, but be safe if one went away.
                    if sockets[live.id] == nil { return .drained }
                }
            }
        }
        return .more
    }

    // MARK: Monitor events

    private func readMonitor(_ live: LiveSocket) -> ReadOutcome {
        guard let monitor = live.monitor else { return .drained }
        for _ in 0..<Self.receiveBatchMax {
            let message: ZMQMessage
            switch receiveMessage(monitor) {
            case .nothing: return .drained
            case .failure(let error): return .failed(error)
            case .message(let received): message = received
            }
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
        return .more
    }
}
