import ERPCore
import ERPReports
import ERPResilience
import ERPTransport
import ERPWire
import Foundation
import Logging
import ZeroMQ

/// Where nodes are: each node's endpoint (and CURVE public key), and which node serves each
/// service (for `call(_:to: nil, …)`). Shared by the transports of one process and changeable
/// while they run (a node that restarts elsewhere, a test harness learning ephemeral ports).
public final class AddressBook: Sendable {
    public struct Address: Sendable, Hashable {
        /// `tcp://host:port` or `ipc://path`.
        public var endpoint: String
        /// The node's CURVE server public key (Z85); needed to call it under CURVE.
        public var curvePublicKey: String?
        public init(endpoint: String, curvePublicKey: String? = nil) {
            self.endpoint = endpoint
            self.curvePublicKey = curvePublicKey
        }
    }

    private struct Entries {
        var nodes: [NodeName: Address]
        var services: [ServiceName: NodeName]
    }

    private let entries: Locked<Entries>

    public init(nodes: [NodeName: Address] = [:], services: [ServiceName: NodeName] = [:]) {
        entries = Locked(Entries(nodes: nodes, services: services))
    }

    public func set(_ node: NodeName, _ address: Address) { entries.withLock { $0.nodes[node] = address } }
    public func set(_ service: ServiceName, servedBy node: NodeName) { entries.withLock { $0.services[service] = node } }
    public func address(of node: NodeName) -> Address? { entries.withLock { $0.nodes[node] } }
    public func node(serving service: ServiceName) -> NodeName? { entries.withLock { $0.services[service] } }
}

/// What a `ZeroMQTransport` has done, including every message it refused or lost, so that nothing
/// is silent.
public struct TransportCounters: Sendable, Hashable, Codable {
    public init() {}
    public var callsStarted = 0
    public var repliesReceived = 0
    /// Calls that ended with `deadlineExceeded` on the caller's side.
    public var callsTimedOut = 0
    /// Calls failed because the connection to the callee dropped while they were in flight.
    public var callsFailedByDisconnect = 0
    /// Calls failed because the request could not be handed to libzmq (peer absent, queue full).
    public var callsFailedToSend = 0
    /// Replies for calls no longer waiting (timed out, or a duplicate).
    public var lateReplies = 0
    public var requestsReceived = 0
    /// Requests answered `deadlineExceeded` without running the handler.
    public var requestsExpiredOnArrival = 0
    /// Requests for a method this node does not serve (answered `unavailable`).
    public var requestsForUnknownMethods = 0
    /// Malformed messages answered with a typed error (their call id was readable).
    public var malformedAnswered = 0
    /// Malformed messages dropped: nothing to address an answer to.
    public var malformedDropped = 0
    /// Replies the server could not hand to libzmq (the caller went away).
    public var replySendFailures = 0
    /// Messages sent twice on purpose by the duplicate fault.
    public var duplicatesSent = 0
    /// Requests refused because the caller's key may not call the method (answered `forbidden`).
    public var requestsForbidden = 0
    /// Requests refused by the node's rate limit (answered `overloaded` with a retry-after).
    public var requestsRateLimited = 0
    /// Handler tasks started: for the requests that found no idle handler task to take them.
    public var handlerTasksStarted = 0
    /// Idle handler tasks ended for lingering past `Settings.idleHandlerLinger` beyond the kept ones.
    public var handlerTasksRetired = 0
    /// Sockets to a destination closed and opened anew after a call found no connection to it
    /// (libzmq gives a connection up for good after a protocol error).
    public var connectionsReopened = 0
}

/// Who may call what: each admitted CURVE key's holder, and the rule that says which methods a
/// holder may call. The ZAP handler already refuses unknown keys at the handshake; this refuses a
/// known key a method it has no business with (a device key asking for the fault controls, a
/// service calling outside the seed's diagrams). The caller is named by its key, as the ZAP
/// handler authenticated it, never by what its request says.
public struct CallerAuthorization: Sendable {
    /// Z85 public key → the name of whoever holds it.
    public var holders: [String: String]
    /// Whether `holder` may call `method` here.
    public var allows: @Sendable (_ holder: String, _ method: String) -> Bool

    public init(holders: [String: String], allows: @escaping @Sendable (_ holder: String, _ method: String) -> Bool) {
        self.holders = holders
        self.allows = allows
    }

    /// A key's short form for logs: enough to find it, not the whole key.
    public static func keyId(_ key: String) -> String { String(key.prefix(8)) }
}

/// Typed RPC over ZeroMQ. Each node binds one ROUTER at its endpoint for incoming requests and
/// opens one DEALER per destination node for its calls, lazily, at the first call. Requests and
/// responses are JSON (`WireJSON`, the bytes `JSONCoding` writes) in the one-frame `erp/2` messages of
/// `WireFormat`.
///
/// Twin of the simulator's `SimTransport`. Differences: payloads are encoded (a request type must
/// survive a JSON round trip), the network is real (loss shows up as a dropped connection and is
/// answered `unavailable`; partitions, drops, delays and duplicates come from the `faults` filter
/// that a scenario runner sets at run time, on the sending side), deadlines are
/// timed on the wall clock by the node's executor, and handlers run as tasks on the node's
/// `SerialTaskExecutor`, which plays the part of the simulated world's executor.
///
/// Lifecycle: `init` does no I/O; `start()` binds the ROUTER; `stop()` closes every socket, fails
/// the calls in flight with `unavailable` and forgets the handlers (what a crash looks like).
public final class ZeroMQTransport: Transport, @unchecked Sendable {
    // @unchecked Sendable: the mutable state lives in `state` (a lock); the rest is immutable.

    /// How the node's sockets authenticate. No default: plaintext must be asked for.
    public enum Security: Sendable, Hashable {
        /// ZMTP NULL: no encryption, no authentication.
        case plaintext
        /// CURVE with this node's key pair: server keys on the ROUTER (the context needs a running
        /// `ZAPAuthenticator`), client keys on each DEALER with the destination's public key from
        /// the address book.
        case curve(CurveKeyPair)
    }

    public struct Settings: Sendable {
        /// How long a call waits for a lost connection to come back before failing with
        /// `unavailable` (a restarted peer is found within `reconnectInterval`); never beyond the
        /// call's deadline.
        public var connectWaitMax: Duration = .milliseconds(250)
        /// The same for a destination never reached yet: the first handshake (CURVE, ZAP) may take
        /// longer on a loaded machine.
        public var firstConnectWaitMax: Duration = .seconds(2)
        /// DEALER reconnect period, without exponential growth: a restarted peer is found within
        /// this long, which matters more here than the cost of retrying a dead one on a LAN.
        public var reconnectInterval: Duration = .milliseconds(100)
        /// How often the node looks for dropped connections to fail their calls in flight.
        public var connectionCheckInterval: Duration = .milliseconds(20)
        /// Calls in flight at once; beyond it `call` fails with `overloaded`.
        public var pendingCallCountMax = 65_536
        /// Idle handler tasks kept however long they wait. A burst may leave up to
        /// `idleWorkersMax` idle; those beyond this many end once they have waited
        /// `idleHandlerLinger` (each holds its task allocator's memory: a soak saw a service's heap
        /// climb by 0.3 – 0.7 MiB over minutes as rarer, larger bursts left more of them, and stay).
        public var idleHandlersKept = 8
        public var idleHandlerLinger: Duration = .seconds(10)
        /// How long `start()` retries a bind refused as in use (a previous incarnation still
        /// closing its socket).
        public var bindRetryMax: Duration = .seconds(2)
        public init() {}
    }

    /// The largest message a node's sockets take (`ZMQ_MAXMSGSIZE`). libzmq drops a connection
    /// that carries a bigger one, and a connecting socket whose connection was dropped for it
    /// never reconnects: such a message is refused before it is sent (`too_large`), never sent.
    public static let messageByteCountMax = Int(SocketOptions(security: .plaintext).messageSizeMax)

    public let node: NodeName
    public let addressBook: AddressBook
    /// Runs the handlers and the calls' deadline alarm of this node.
    public let executor: SerialTaskExecutor
    private let context: ZMQContext
    private let security: Security
    private let settings: Settings
    private let clock: SystemClock
    private let logger: Logger
    /// What a scenario does to this node's outgoing messages (nothing unless set).
    public let faults = FaultFilter()
    /// Requests this node served, by method and outcome (`ok` or the error's kind), with the
    /// handlers' latency.
    public let served = RequestMetrics.rpcServed()
    /// The refused calls' log lines, at most one a second (a refused caller can send thousands).
    private let refusalLog = LogThrottle()
    /// The same requests' own time: what each handler took minus its waits on calls and sleeps
    /// (`HandlerWaits`). Not exported to Prometheus; `erp calibrate` reads it.
    public let ownTime = RequestMetrics(counterName: "erp_rpc_own_total", durationName: "erp_rpc_own_duration_ms",
                                        help: "RPC requests served, by method, with the handlers' own time.", keyLabel: "method",
                                        outcomeLabel: "outcome")
    /// Calls this node made, by method and outcome, with their round-trip latency.
    public let calls = RequestMetrics.rpcCalls()
    private let bindEndpoint: String
    /// Whether requests are authorized by key (fixed at init: the ROUTER reads user ids for it).
    private let authorizes: Bool
    private let state = Locked(State())

    private enum Phase { case idle, running, stopped }

    private struct State {
        var phase = Phase.idle
        var io: IOThread?
        var router: ZMQSocket?
        var endpoint: String?
        var handlers = HandlerTable()
        /// Who may call what (nil: any admitted key, anything); `updateAuthorization` replaces it.
        var authorization: CallerAuthorization?
        /// The node's limit on requests, a bucket per caller (nil: none).
        var incomingLimit: RateLimiter?
        var peers: [NodeName: Peer] = [:]
        var opening: [NodeName: Task<Peer, any Error>] = [:]
        var pending: [UInt64: PendingCall] = [:]
        /// Handler tasks waiting for a request (`work()`), the longest idle first: the newest is
        /// handed the next request, so the ones a burst left over sink to the front and linger.
        var idleWorkers: [IdleWorker] = []
        /// When the deadline alarm next goes off, if it is armed: the earliest deadline of the
        /// calls in flight when it was armed (a call that ends sooner does not disarm it).
        var alarm: ContinuousClock.Instant?
        var callSequence: UInt64 = 0
        var counters = TransportCounters()
    }

    /// The DEALER to one destination node.
    private final class Peer: @unchecked Sendable {
        let node: NodeName
        let endpoint: String
        let socket: ZMQSocket
        /// Disconnects already acted upon; touched only under the transport's lock.
        var disconnectsSeen = 0
        init(node: NodeName, endpoint: String, socket: ZMQSocket) {
            self.node = node
            self.endpoint = endpoint
            self.socket = socket
        }
    }

    private let syncBeforeSend: SyncBeforeSend?

    /// A call in flight. Changed by reading it out of `State.pending` and storing it back: a
    /// change through the dictionary's subscript in place (`pending[id]?.field = …`) goes
    /// through its `_modify` coroutine, which allocates its frame on the heap each time.
    private struct PendingCall {
        var target: NodeName
        /// The call's deadline on the executor's clock.
        var due: ContinuousClock.Instant
        var continuation: UnsafeContinuation<[UInt8], any Error>?
        var result: Result<[UInt8], RPCError>?
    }

    /// - Parameters:
    ///   - endpoint: where the ROUTER binds (`tcp://0.0.0.0:7001`, `tcp://127.0.0.1:*`, `ipc://…`).
    ///   - security: `.plaintext` or `.curve(keyPair)`; there is no default on purpose.
    ///   - authorization: who may call which method, by CURVE key (CURVE only; nil: any admitted key
    ///     may call anything).
    ///   - syncBeforeSend: the node's barrier: a request or a reply leaves only once what the node
    ///     committed before it is durable. (The answers the I/O thread gives at once, before any
    ///     handler ran — malformed, expired, forbidden, rate limited, unknown method — depend on no
    ///     commit and do not wait.)
    public init(node: NodeName, endpoint: String, addressBook: AddressBook, context: ZMQContext,
                security: Security, executor: SerialTaskExecutor, settings: Settings = Settings(),
                clock: SystemClock = SystemClock(), logger: Logger? = nil, authorization: CallerAuthorization? = nil,
                syncBeforeSend: SyncBeforeSend? = nil) {
        self.node = node
        self.syncBeforeSend = syncBeforeSend
        self.authorizes = authorization != nil
        state.withLock { $0.authorization = authorization }
        self.bindEndpoint = endpoint
        self.addressBook = addressBook
        self.context = context
        self.security = security
        self.executor = executor
        self.settings = settings
        self.clock = clock
        self.logger = logger ?? Logger(label: node.rawValue + ".transport")
    }

    public var counters: TransportCounters { state.withLock { $0.counters } }

    /// Replaces who may call what, for the requests that arrive from now on (keys added or revoked
    /// on a running node). Only for a transport made with an authorization.
    /// Returns the rules it replaced.
    @discardableResult
    public func updateAuthorization(_ authorization: CallerAuthorization) -> CallerAuthorization? {
        precondition(authorizes, "\(node): a transport made without authorization does not read callers' keys")
        return state.withLock { s in
            defer { s.authorization = authorization }
            return s.authorization
        }
    }

    /// Limits the requests this node serves: a token bucket per caller (the holder of its CURVE key
    /// when callers are authorized by key, else the name its requests give), refused beyond it
    /// with `overloaded` and the time after which a retry would be allowed. The seed's rate limit
    /// per service: a peer that floods one service cannot take all of it. Nil removes the limit.
    public func limitIncoming(_ settings: RateLimiterSettings?) {
        state.withLock { $0.incomingLimit = settings.map { RateLimiter(settings: $0) } }
    }

    /// The endpoint the ROUTER is bound to (the real port when bound to `*`), once started.
    public var endpoint: String? { state.withLock { $0.endpoint } }
    public var pendingCallCount: Int { state.withLock { $0.pending.count } }

    // MARK: Lifecycle

    /// Starts the node's I/O thread (hosted on the node's executor, so the node's tasks send
    /// straight into their sockets) and binds its ROUTER. Returns the bound endpoint.
    @discardableResult
    public func start() async throws -> String {
        try state.withLock { s in
            guard s.phase == .idle else { throw ZeroMQError(.invalidState, message: "\(node): transport started twice") }
        }
        let io = try IOThread.start(context: context, name: "zmq-\(node)", on: executor)
        let serverSecurity: ZMQSecurity = switch security {
        case .plaintext: .plaintext
        case .curve(let keyPair): .curveServer(keyPair: keyPair)
        }
        do {
            var routerOptions = SocketOptions(security: serverSecurity)
            // The ZAP handler's user id is the caller's key: what authorization goes by.
            routerOptions.readsUserId = authorizes
            let router = try await io.open(.router, options: routerOptions,
                                           delivery: .handler { [weak self] message, sender in self?.receiveRequest(message, sender) })
            let bindEnd = ContinuousClock.now + settings.bindRetryMax
            var bound: String
            while true {
                do {
                    bound = try await router.bind(bindEndpoint)
                    break
                } catch let error as ZeroMQError where error.code == .addressUnavailable && ContinuousClock.now < bindEnd {
                    await executor.sleep(for: .milliseconds(20))
                }
            }
            state.withLock { s in
                s.phase = .running
                s.io = io
                s.router = router
                s.endpoint = bound
            }
            scheduleConnectionCheck()
            return bound
        } catch {
            await io.stop()
            throw error
        }
    }

    /// Closes every socket and the I/O thread, fails calls in flight with `unavailable`, forgets
    /// the handlers. Later calls fail with `unavailable`; later registrations are ignored.
    public func stop() async {
        let (io, waiting, opening, idle) = state.withLock { s in
            s.phase = .stopped
            let io = s.io
            s.io = nil
            s.router = nil
            s.peers = [:]
            let opening = Array(s.opening.values)
            s.opening = [:]
            s.handlers.removeAll()
            // Idle handler tasks end; no task becomes idle once the phase is `stopped`.
            let idle = s.idleWorkers
            s.idleWorkers = []
            var waiting: [UnsafeContinuation<[UInt8], any Error>] = []
            for (id, call) in s.pending {
                if let continuation = call.continuation {
                    waiting.append(continuation)
                    s.pending[id] = nil
                } else if call.result == nil {
                    s.pending[id]?.result = .failure(.unavailable("\(node) stopped"))
                }
            }
            return (io, waiting, opening, idle)
        }
        for worker in idle { worker.continuation.resume(returning: nil) }
        for task in opening { task.cancel() }
        for continuation in waiting { continuation.resume(throwing: RPCError.unavailable("\(node) stopped")) }
        await io?.stop()
    }

    // MARK: Transport

    public func register<R: RPCRequest>(_ type: R.Type, handler: @escaping @Sendable (R, CallContext) async throws -> R.Response) {
        state.withLock { s in
            guard s.phase != .stopped else { return }
            s.handlers.register(type, handler: handler)
        }
    }

    public func call<R: RPCRequest>(_ request: R, to destination: NodeName?, metadata: CallMetadata) async throws -> R.Response {
        let target: NodeName
        if let destination {
            target = destination
        } else {
            guard let serving = addressBook.node(serving: R.service) else { throw RPCError.unavailable("no node serves \(R.service)") }
            target = serving
        }
        let body: [UInt8]
        do {
            body = try WireJSON.encode(request)
        } catch {
            throw RPCError.rejected(code: "internal", message: "cannot encode \(R.method) request: \(error)")
        }
        let started = ContinuousClock.now
        let answer: [UInt8]
        do {
            answer = try await exchange(method: R.method, body: body, target: target, metadata: metadata)
            let took = ContinuousClock.now - started
            calls.record(R.method, outcome: "ok", latency: took)
            HandlerWaits.add(took)
        } catch {
            let took = ContinuousClock.now - started
            calls.record(R.method, outcome: (error as? RPCError)?.kind ?? "error", latency: took)
            HandlerWaits.add(took)
            throw error
        }
        do {
            return try WireJSON.decode(R.Response.self, from: answer)
        } catch {
            throw RPCError.rejected(code: "bad_response", message: "cannot decode \(R.method) response: \(error)")
        }
    }

    /// Sends one encoded request and waits for its encoded answer. Every outcome — reply, deadline alarm,
    /// send failure, lost connection, stop — goes through `complete`, and the first one wins.
    private func exchange(method: String, body: [UInt8], target: NodeName, metadata: CallMetadata) async throws -> [UInt8] {
        guard let address = addressBook.address(of: target) else { throw RPCError.unavailable("no address for node \(target)") }
        let remaining = metadata.deadline - clock.now
        guard remaining > .zero else {
            state.withLock { $0.counters.callsTimedOut += 1 }
            throw RPCError.deadlineExceeded
        }
        let due = ContinuousClock.now + remaining
        let (callId, arm): (UInt64, Bool) = try state.withLock { s in
            guard s.phase == .running else { throw RPCError.unavailable("\(node) is not running") }
            guard s.pending.count < settings.pendingCallCountMax else { throw RPCError.overloaded(retryAfterMilliseconds: nil) }
            s.callSequence &+= 1
            s.pending[s.callSequence] = PendingCall(target: target, due: due)
            s.counters.callsStarted += 1
            let arm = s.alarm.map { due < $0 } ?? true
            if arm { s.alarm = due }
            return (s.callSequence, arm)
        }
        if arm { armAlarm(at: due) }
        do {
            let frames = [try WireFormat.requestFrame(
                WireFormat.RequestHeader(callId: callId, method: method, caller: node.rawValue, metadata: metadata), body: body)]
            if frames[0].count > Self.messageByteCountMax {
                throw RPCError.rejected(code: "too_large", message: "\(method): the request is \(frames[0].count) bytes; a message carries at most \(Self.messageByteCountMax)")
            }
            let peer = try await self.peer(for: target, address: address)
            await syncBeforeSend?.wait()
            // The fault filter may lose the request (the call then ends at its deadline, as across a
            // partition), hold it back or send it twice.
            if case .send(let copies, let delay) = faults.decide(to: target) {
                if delay > .zero { await executor.sleep(for: delay) }
                try await send(frames, via: peer, deadline: metadata.deadline)
                if copies > 1 {
                    state.withLock { $0.counters.duplicatesSent += 1 }
                    try await send(frames, via: peer, deadline: metadata.deadline)
                }
            }
        } catch {
            let failure: RPCError = if let error = error as? RPCError {
                error
            } else if let error = error as? WireFormat.FieldTooLong {
                .rejected(code: "bad_request", message: "\(method): \(error)")
            } else {
                .unavailable("call to \(target) failed: \(error)")
            }
            complete(callId, .failure(failure), counting: \.callsFailedToSend)
        }
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[UInt8], any Error>) in
            let ready: Result<[UInt8], RPCError>? = state.withLock { s in
                guard var call = s.pending[callId] else { return .failure(.unavailable("\(node) stopped")) }
                if let result = call.result {
                    s.pending[callId] = nil
                    return result
                }
                call.continuation = continuation
                s.pending[callId] = call  // not `pending[callId]?.continuation =`: see `PendingCall`
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    // MARK: Deadlines

    /// One alarm for all the calls in flight, not a timer per call (an allocation, a heap entry
    /// and a cancellation each, for calls that nearly all end long before their deadline): it goes
    /// off at the earliest deadline among them, fails the calls past theirs and arms itself again
    /// for the earliest left. A call due sooner than the armed alarm arms a sooner one.
    private func armAlarm(at due: ContinuousClock.Instant) {
        executor.schedule(at: due) { [weak self] in self?.alarmWentOff(armedFor: due) }
    }

    private func alarmWentOff(armedFor instant: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        let (expired, next): ([UInt64], ContinuousClock.Instant?) = state.withLock { s in
            // Replaced by a sooner alarm, which has gone off and armed the one now in `alarm`.
            guard s.alarm == instant else { return ([], nil) }
            var expired: [UInt64] = []
            var next: ContinuousClock.Instant?
            for (id, call) in s.pending where call.result == nil {
                if call.due <= now {
                    expired.append(id)
                } else if next.map({ call.due < $0 }) ?? true {
                    next = call.due
                }
            }
            s.alarm = next
            return (expired, next)
        }
        for id in expired.sorted() { complete(id, .failure(.deadlineExceeded), counting: \.callsTimedOut) }
        if let next { armAlarm(at: next) }
    }

    /// Ends call `callId` with `result` unless it has already ended. Returns whether it did.
    /// `accepted` (or `refused`, when the call had already ended) names the counter to bump; it
    /// is bumped under the lock before the caller resumes, so a caller that reads the counters
    /// right after its call returns sees its own outcome counted.
    @discardableResult
    private func complete(_ callId: UInt64, _ result: Result<[UInt8], RPCError>,
                          counting accepted: WritableKeyPath<TransportCounters, Int>? = nil,
                          orElse refused: WritableKeyPath<TransportCounters, Int>? = nil) -> Bool {
        let (ended, continuation): (Bool, UnsafeContinuation<[UInt8], any Error>?) = state.withLock { s in
            guard var call = s.pending[callId], call.result == nil else {
                if let refused { s.counters[keyPath: refused] += 1 }
                return (false, nil)
            }
            if let accepted { s.counters[keyPath: accepted] += 1 }
            if let continuation = call.continuation {
                s.pending[callId] = nil
                return (true, continuation)
            }
            call.result = result
            s.pending[callId] = call
            return (true, nil)
        }
        continuation?.resume(with: result)
        return ended
    }

    /// The DEALER to `target`, opened and connected at the first call (concurrent first calls
    /// share one opening).
    private func peer(for target: NodeName, address: AddressBook.Address) async throws -> Peer {
        enum Step { case ready(Peer), wait(Task<Peer, any Error>) }
        let step: Step = try state.withLock { s in
            if let peer = s.peers[target], peer.endpoint == address.endpoint { return .ready(peer) }
            if let task = s.opening[target] { return .wait(task) }
            guard s.phase == .running, let io = s.io else { throw RPCError.unavailable("\(node) is not running") }
            let previous = s.peers.removeValue(forKey: target)
            let task = Task(executorPreference: executor) { [self] () async throws -> Peer in
                if let previous { await previous.socket.close() }
                return try await openPeer(target, address: address, io: io)
            }
            s.opening[target] = task
            return .wait(task)
        }
        switch step {
        case .ready(let peer):
            return peer
        case .wait(let opening):
            do {
                return try await opening.value
            } catch {
                // Forget this failed opening (not a newer one another call may have started since).
                state.withLock { s in if s.opening[target] == opening { s.opening[target] = nil } }
                throw error as? RPCError ?? RPCError.unavailable("cannot connect to \(target) at \(address.endpoint): \(error)")
            }
        }
    }

    private func openPeer(_ target: NodeName, address: AddressBook.Address, io: IOThread) async throws -> Peer {
        let clientSecurity: ZMQSecurity
        switch security {
        case .plaintext:
            clientSecurity = .plaintext
        case .curve(let keyPair):
            guard let serverKey = address.curvePublicKey else { throw RPCError.unavailable("no CURVE public key for \(target)") }
            clientSecurity = .curveClient(keyPair: keyPair, serverPublicKey: serverKey)
        }
        var options = SocketOptions(security: clientSecurity)
        options.reconnectInterval = settings.reconnectInterval
        options.reconnectIntervalMax = settings.reconnectInterval
        let socket = try await io.open(.dealer, options: options, delivery: .handler { [weak self] message, _ in
            self?.receiveReply(message)
        })
        try await socket.connect(address.endpoint)
        let peer = Peer(node: target, endpoint: address.endpoint, socket: socket)
        let kept = state.withLock { s in
            s.opening[target] = nil
            guard s.phase == .running else { return false }
            s.peers[target] = peer
            return true
        }
        if !kept {
            await socket.close()
            throw RPCError.unavailable("\(node) stopped")
        }
        return peer
    }

    /// Hands `frames` to libzmq. A DEALER with no connected peer refuses at once (`ZMQ_IMMEDIATE`),
    /// so a refusal is retried until a connection appears, for at most `connectWaitMax`.
    private func send(_ frames: [[UInt8]], via peer: Peer, deadline: Timestamp) async throws {
        let everConnected = peer.socket.counters.handshakesSucceeded > 0
        let waitEnd = min(deadline, clock.now + (everConnected ? settings.connectWaitMax : settings.firstConnectWaitMax))
        while true {
            do {
                try await peer.socket.send(frames: frames)
                return
            } catch let error as ZeroMQError where error.code == .highWaterMark {
                let now = clock.now
                if now >= deadline { throw RPCError.deadlineExceeded }
                if now >= waitEnd {
                    let counters = peer.socket.counters
                    // No connection at all: libzmq may have given this one up for good (it never
                    // reconnects after dropping a connection for a protocol error, such as a
                    // message over its size limit). A fresh socket connects anew at the next call.
                    if counters.connections <= counters.disconnects { await forget(peer) }
                    if Self.keyRefused(counters) { throw RPCError.unavailable(Self.keyRefusal(by: peer.node)) }
                    throw RPCError.unavailable("\(peer.node) at \(peer.endpoint) is not connected or not reading "
                        + "(handshakes \(counters.handshakesSucceeded), disconnects \(counters.disconnects), "
                        + "auth failures \(counters.authenticationFailures), handshake failures \(counters.handshakeFailures))")
                }
                await executor.sleep(for: .milliseconds(1))
            } catch {
                throw RPCError.unavailable("cannot send to \(peer.node): \(error)")
            }
        }
    }

    /// Whether the callee's ZAP handler refused this node's key: a CURVE handshake failed on
    /// authentication and none ever succeeded on the socket.
    private static func keyRefused(_ counters: SocketCounters) -> Bool {
        counters.authenticationFailures > 0 && counters.handshakesSucceeded == 0
    }

    private static func keyRefusal(by node: NodeName) -> String {
        "\(node) refused this node's key at the CURVE handshake (it is not in \(node)'s allow-list)"
    }

    /// Closes `peer`'s socket and forgets it, unless another has replaced it already.
    private func forget(_ peer: Peer) async {
        let forgotten = state.withLock { s in
            guard s.peers[peer.node] === peer else { return false }
            s.peers[peer.node] = nil
            s.counters.connectionsReopened += 1
            return true
        }
        if forgotten { await peer.socket.close() }
    }

    // MARK: Lost connections

    private func scheduleConnectionCheck() {
        executor.schedule(after: settings.connectionCheckInterval) { [weak self] in
            guard let self else { return }
            if self.checkConnections() { self.scheduleConnectionCheck() }
        }
    }

    /// Fails the calls in flight to every peer whose connection dropped since the last check (what
    /// a TCP reset tells a caller: the request may or may not have been served). False once stopped.
    private func checkConnections() -> Bool {
        let peers: [Peer]? = state.withLock { s in s.phase == .running ? Array(s.peers.values) : nil }
        guard let peers else { return false }
        var lost: [(NodeName, refusedKey: Bool)] = []
        for peer in peers {
            let counters = peer.socket.counters
            let isNew = state.withLock { _ in
                defer { peer.disconnectsSeen = counters.disconnects }
                return counters.disconnects > peer.disconnectsSeen
            }
            // A CURVE handshake the other side's ZAP refused ends as a dropped connection too:
            // "connection lost" sent an operator whose client key was not admitted looking for a
            // network fault.
            if isNew { lost.append((peer.node, Self.keyRefused(counters))) }
        }
        for (target, refusedKey) in lost {
            let why = refusedKey ? Self.keyRefusal(by: target) : "connection to \(target) lost"
            let ids = state.withLock { s in s.pending.filter { $0.value.target == target && $0.value.result == nil }.map(\.key) }
            for id in ids { complete(id, .failure(.unavailable(why)), counting: \.callsFailedByDisconnect) }
        }
        return true
    }

    // MARK: Receiving (on the I/O thread)

    private func receiveReply(_ message: ZMQMessage) {
        switch WireFormat.decodeReply(message.frames[...]) {
        case .failure(let refusal):
            state.withLock { $0.counters.malformedDropped += 1 }
            logger.debug("dropped a malformed reply: \(refusal.error)")
        case .success(let reply):
            complete(reply.callId, reply.result, counting: \.repliesReceived, orElse: \.lateReplies)
        }
    }

    private func receiveRequest(_ message: ZMQMessage, _ sender: InlineSender) {
        let frames = message.frames
        guard frames.count >= 2 else {
            state.withLock { $0.counters.malformedDropped += 1 }
            return
        }
        // The envelope the answer goes back through: the peer's routing id, and the empty
        // delimiter a REQ socket puts in front of its message (and expects in front of the reply).
        let envelope = frames.count == 3 && frames[1].isEmpty ? [frames[0], []] : [frames[0]]
        /// Sends `answer` back through the envelope now, from the I/O thread.
        func sendNow(_ answer: [[UInt8]]) {
            do {
                try sender.send(frames: envelope + answer)
            } catch {
                state.withLock { $0.counters.replySendFailures += 1 }
            }
        }
        func answerNow(_ callId: UInt64, _ error: RPCError) {
            sendNow([WireFormat.replyFrame(callId: callId, result: .failure(error))])
        }
        switch WireFormat.decodeRequest(frames.dropFirst(envelope.count)) {
        case .failure(let refusal):
            if let answer = WireFormat.answer(to: refusal) {
                state.withLock { $0.counters.malformedAnswered += 1 }
                sendNow(answer)
            } else {
                state.withLock { $0.counters.malformedDropped += 1 }
            }
            logger.debug("refused a malformed request: \(refusal.error)")
        case .success(let (header, body)):
            let metadata = header.metadata
            let (handler, authorization, limits) = state.withLock { s -> (HandlerTable.Encoded?, CallerAuthorization?, Bool) in
                s.counters.requestsReceived += 1
                return (s.handlers.encodedHandler(for: header.method), s.authorization, s.incomingLimit != nil)
            }
            // The key's rights first, then the method, then the deadline: a key with no rights
            // learns nothing of what the node serves (an unknown method was answered
            // `unavailable`, a real one `forbidden`), and only a method the node serves is
            // recorded by name (a method name from the wire, recorded on an expired deadline
            // before any check, grew a service by 8 KB per name, to a gigabyte).
            // Who calls: the name the request gives, unless that would pass a key's holder off as
            // a service it is not (with authorization, a service is whoever holds its key).
            var caller = NodeName(header.caller)
            if let authorization {
                let key = message.userId ?? ""
                let holder = authorization.holders[key]
                // A service calling as itself, the usual case, is settled by one string comparison.
                if let holder, holder != header.caller, ServiceName(rawValue: holder) != nil || ServiceName(rawValue: header.caller) != nil {
                    caller = NodeName(holder)
                }
                guard let holder, authorization.allows(holder, header.method) else {
                    state.withLock { $0.counters.requestsForbidden += 1 }
                    // Counted where an operator reads (`/metrics`), by method when it is one served here.
                    served.record(handler == nil ? "unknown" : header.method, outcome: "forbidden", latency: .zero)
                    let who = holder ?? "an unknown key"
                    // The method as the caller named it, cut short: it comes off the wire.
                    if let line = refusalLog.line("forbidden", "refused \(header.method.clipped()) to \(who) (key \(CallerAuthorization.keyId(key)))") {
                        logger.warning("\(line)")
                    }
                    answerNow(header.callId, .rejected(code: "forbidden", message: "\(who) may not call \(header.method) on \(node)"))
                    return
                }
            }
            guard let handler else {
                state.withLock { $0.counters.requestsForUnknownMethods += 1 }
                answerNow(header.callId, .unavailable("\(node) does not serve \(header.method)"))
                return
            }
            let arrived = clock.now
            if metadata.deadline <= arrived {
                state.withLock { $0.counters.requestsExpiredOnArrival += 1 }
                served.record(header.method, outcome: RPCError.deadlineExceeded.kind, latency: .zero)
                // Deadlines are absolute: a caller whose clock is behind this node's (or a node whose
                // clock is ahead) sees requests arrive already late, each refused so until the clocks agree (the
                // skewed-clocks scenario: inventory 1.5 s behind stalled its events for 10 s, and
                // nothing said why). Said once a second, with by how much.
                if let line = refusalLog.line("expired", "\(header.method.clipped()) from \(caller.rawValue.clipped()) arrived \((arrived - metadata.deadline).readable) past its deadline, answered deadline_exceeded: the clocks may disagree (the caller's behind, or this node's ahead), or the caller stalled before sending") {
                    logger.warning("\(line)")
                }
                answerNow(header.callId, .deadlineExceeded)
                return
            }
            // The bucket is looked at only on a node that has a limit: no second lock per request.
            if limits, let limited = state.withLock({ s -> Duration? in
                let caller = authorization?.holders[message.userId ?? ""] ?? header.caller
                guard case .limited(let retryAfter)? = s.incomingLimit?.tryAcquire(key: caller, now: clock.now) else { return nil }
                s.counters.requestsRateLimited += 1
                return retryAfter
            }) {
                served.record(header.method, outcome: "overloaded", latency: .zero)
                answerNow(header.callId, .overloaded(retryAfterMilliseconds: Int64(limited.milliseconds.rounded(.up))))
                return
            }
            let request = Incoming(handler: handler, body: body, context: CallContext(metadata: metadata, caller: caller),
                                   envelope: envelope, callId: header.callId, method: header.method, arrived: ContinuousClock.now)
            if let worker = state.withLock({ s in
                if s.idleWorkers.isEmpty { s.counters.handlerTasksStarted += 1 }
                return s.idleWorkers.popLast()?.continuation
            }) {
                worker.resume(returning: request)
            } else {
                Task(executorPreference: executor) { [self] in
                    await serve(request)
                    await work()
                }
            }
        }
    }

    // MARK: Serving (on the executor)

    /// A request that passed the I/O thread's checks, for a handler task.
    private struct Incoming: Sendable {
        let handler: HandlerTable.Encoded
        let body: [UInt8]
        let context: CallContext
        let envelope: [[UInt8]]
        let callId: UInt64
        let method: String
        let arrived: ContinuousClock.Instant
    }

    /// Idle handler tasks kept for the next requests, at most: beyond it a task that finishes a
    /// request ends. A burst of requests whose handlers wait (on calls, on the disk) starts as many
    /// tasks as it needs; afterwards this many stay.
    static let idleWorkersMax = 64

    /// A handler task waiting for a request, and since when.
    private struct IdleWorker {
        let continuation: UnsafeContinuation<Incoming?, Never>
        let since: ContinuousClock.Instant
    }

    /// Runs one request's handler and sends its reply.
    private func serve(_ request: Incoming) async {
        let waits = HandlerWaits()
        var result = await HandlerWaits.$current.withValue(waits) { await request.handler(request.body, request.context) }
        // An answer over the message limit would cost the caller its connection (and a caller
        // that connects never gets it back): the caller is told instead.
        if case .success(let body) = result, body.count > Self.messageByteCountMax - WireFormat.replyHeaderRoom {
            logger.warning("\(request.method) answer of \(body.count) bytes not sent: over the message limit",
                           metadata: ["correlationId": "\(request.context.correlationId)"])
            result = .failure(.rejected(code: "too_large", message: "the answer to \(request.method) is \(body.count) bytes; a message carries at most \(Self.messageByteCountMax)"))
        }
        let took = ContinuousClock.now - request.arrived
        let outcome = switch result { case .success: "ok"; case .failure(let error): error.kind }
        served.record(request.method, outcome: outcome, latency: took)
        ownTime.record(request.method, outcome: outcome, latency: waits.ownTime(of: took))
        if case .failure(.rejected("internal", let why)) = result {
            logger.warning("\(request.method) failed: \(why)", metadata: ["correlationId": "\(request.context.correlationId)"])
        }
        await reply(to: request.envelope, caller: request.context.caller, callId: request.callId, result: result,
                    correlationId: request.context.correlationId)
    }

    /// A handler task's life after its first request: it waits among the idle ones and serves
    /// the requests handed to it, one at a time, until the transport stops or enough others are
    /// idle. Starting, running to its end and freeing a task for every request was 10 – 15 % of a
    /// serving thread's samples in `erp bench transport`; handing a request to a waiting task
    /// costs one resumption.
    private func work() async {
        let settings = self.settings
        while let request = await withUnsafeContinuation({ (worker: UnsafeContinuation<Incoming?, Never>) in
            let now = ContinuousClock.now
            let (kept, retired) = state.withLock { s -> (Bool, UnsafeContinuation<Incoming?, Never>?) in
                guard s.phase == .running, s.idleWorkers.count < Self.idleWorkersMax else { return (false, nil) }
                s.idleWorkers.append(IdleWorker(continuation: worker, since: now))
                // One lingering task beyond the kept ones ends at each park: after a burst they go
                // within as many requests.
                guard s.idleWorkers.count > settings.idleHandlersKept, now - s.idleWorkers[0].since > settings.idleHandlerLinger else {
                    return (true, nil)
                }
                s.counters.handlerTasksRetired += 1
                return (true, s.idleWorkers.removeFirst().continuation)
            }
            if !kept { worker.resume(returning: nil) }
            retired?.resume(returning: nil)
        }) {
            await serve(request)
        }
    }

    private func reply(to envelope: [[UInt8]], caller: NodeName, callId: UInt64, result: Result<[UInt8], RPCError>,
                       correlationId: String) async {
        await syncBeforeSend?.wait()
        guard case .send(let copies, let delay) = faults.decide(to: caller) else { return } // lost on the way
        if delay > .zero { await executor.sleep(for: delay) }
        guard let router = state.withLock({ $0.router }) else { return } // stopped: a dead node says nothing
        let frames = envelope + [WireFormat.replyFrame(callId: callId, result: result)]
        for copy in 0..<copies {
            do {
                try await router.send(frames: frames)
                if copy > 0 { state.withLock { $0.counters.duplicatesSent += 1 } }
            } catch {
                state.withLock { $0.counters.replySendFailures += 1 }
                logger.debug("reply to call \(callId) not sent: \(error)", metadata: ["correlationId": "\(correlationId)"])
            }
        }
    }
}

extension ZeroMQTransport {
    /// This node's RPC metrics (served and called, per method) in Prometheus text format.
    public func prometheusText() -> String { served.prometheusText() + calls.prometheusText() }
}
