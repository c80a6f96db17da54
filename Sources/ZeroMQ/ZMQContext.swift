import CZeroMQ

/// A libzmq context: the owner of libzmq's own background threads and of the `inproc://`
/// namespace (the ZAP handler and the I/O threads' wake-up sockets live there).
///
/// Create one per process, start `IOThread`s and at most one `ZAPAuthenticator` on it, and call
/// `terminate()` last. Terminating while an `IOThread` still runs is safe: the thread sees `ETERM`,
/// closes its sockets and exits, so `terminate()` returns (every socket has `ZMQ_LINGER` 0).
public final class ZMQContext: @unchecked Sendable {
    // @unchecked Sendable: the only stored state besides the lock is `handle`, a libzmq context
    // pointer that never changes after init. libzmq documents contexts as thread safe (every
    // zmq_ctx_* call and zmq_socket may be made from any thread); sockets are not, and no socket
    // is stored here.
    let handle: UnsafeMutableRawPointer
    private let state = Locked(State())

    private struct State {
        var terminated = false
        /// The running `ZAPAuthenticator`, if any (RFC 27 allows one handler per context).
        var authenticatorId: ObjectIdentifier?
        var nextInprocNumber = 0
    }

    /// - Parameter ioThreadCount: libzmq's own background I/O threads (`ZMQ_IO_THREADS`); one is
    ///   plenty below about a gigabyte per second.
    /// - Parameter socketCountMax: `ZMQ_MAX_SOCKETS`, the limit on open sockets in this context.
    public init(ioThreadCount: Int = 1, socketCountMax: Int = 1024) throws {
        precondition(ioThreadCount >= 1 && socketCountMax >= 8)
        guard let handle = zmq_ctx_new() else { throw ZeroMQError.last("zmq_ctx_new") }
        self.handle = handle
        // Set before any socket exists, as libzmq requires.
        guard zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreadCount)) == 0,
              zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, Int32(socketCountMax)) == 0 else {
            let error = ZeroMQError.last("zmq_ctx_set")
            zmq_ctx_term(handle)
            throw error
        }
    }

    deinit {
        // Every IOThread and ZAPAuthenticator holds this context strongly, so by now no socket of
        // ours is open and zmq_ctx_term cannot wait on one.
        if !state.withLock({ $0.terminated }) { zmq_ctx_term(handle) }
    }

    /// Terminates the context: blocks until every socket in it is closed. Sockets opened through
    /// `IOThread` are closed by their thread as soon as it sees `ETERM`, with `ZMQ_LINGER` 0, so
    /// this returns promptly. Calling it twice is harmless. Call it off the cooperative pool if the
    /// caller cannot afford to block (it takes a few milliseconds when threads are still running).
    public func terminate() {
        let alreadyTerminated = state.withLock { state in
            defer { state.terminated = true }
            return state.terminated
        }
        if alreadyTerminated { return }
        while zmq_ctx_term(handle) != 0 {
            // EINTR only: a signal interrupted the wait; anything else is a broken invariant.
            precondition(zmq_errno() == EINTR, "zmq_ctx_term: \(ZeroMQError.last("zmq_ctx_term"))")
        }
    }

    public var isTerminated: Bool { state.withLock { $0.terminated } }

    /// The libzmq version linked at run time.
    public static var libraryVersion: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }

    /// True when the linked libzmq supports CURVE (built with libsodium or tweetnacl).
    public static var hasCurve: Bool { zmq_has("curve") != 0 }

    // MARK: Internal bookkeeping

    /// A fresh `inproc://` address unique in this context, for wake-up and monitor sockets.
    func uniqueInprocAddress(_ purpose: String) -> String {
        let number = state.withLock { state in
            state.nextInprocNumber += 1
            return state.nextInprocNumber
        }
        return "inproc://erp.zeromq.\(purpose).\(number)"
    }

    var hasAuthenticator: Bool { state.withLock { $0.authenticatorId != nil } }

    func authenticatorStarted(id: ObjectIdentifier) {
        state.withLock { $0.authenticatorId = id }
    }

    /// Forgets the authenticator `id`, unless another one has taken its place since.
    func authenticatorStopped(id: ObjectIdentifier) {
        state.withLock { state in
            if state.authenticatorId == id { state.authenticatorId = nil }
        }
    }
}
