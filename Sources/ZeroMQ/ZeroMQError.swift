import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error of the ZeroMQ wrapper: a `code` to switch on, the `errno` libzmq reported (0 when the
/// error is the wrapper's own) and a human message. A struct with a `Code`, not a closed enum,
/// because the set of libzmq failures worth naming may grow (as swift-nio's `ChannelError`).
public struct ZeroMQError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// ROUTER with `ZMQ_ROUTER_MANDATORY`: no peer has this routing id (`EHOSTUNREACH`).
        /// Counted in `SocketCounters.unroutable`.
        case unroutable
        /// The send would block (`EAGAIN` under `ZMQ_DONTWAIT`): the peer's pipe is at its high-water
        /// mark, or — with `ZMQ_IMMEDIATE` — no peer has completed its handshake yet.
        /// Counted in `SocketCounters.highWaterMarkDrops`.
        case highWaterMark
        /// The socket's state machine forbids this now (`EFSM`: REQ sending twice, REP before a request).
        case invalidState
        /// The context was terminated (`ETERM`); nothing more can be done with it.
        case contextTerminated
        /// The socket was closed, or its I/O thread stopped, before or while the command ran.
        case socketClosed
        /// The I/O thread is stopped (or stopping); no command is accepted.
        case ioThreadStopped
        /// The I/O thread's command queue is at its `commandCountMax`.
        case commandQueueFull
        /// An argument libzmq or the wrapper refused (`EINVAL`, an empty message, a bad key).
        case invalidArgument
        /// The endpoint is already bound (`EADDRINUSE`) or cannot be bound (`EADDRNOTAVAIL`).
        case addressUnavailable
        /// The transport or protocol in the endpoint is unknown or unsupported.
        case protocolNotSupported
        /// A CURVE server was opened on a context with no ZAP authenticator: it would admit
        /// every client key, so the wrapper refuses to open it (fail closed).
        case authenticatorMissing
        /// This libzmq was built without CURVE (`zmq_has("curve")` is false).
        case curveUnavailable
        /// Any other libzmq failure; `errno` tells which.
        case other
    }

    public var code: Code
    /// The `zmq_errno()` value behind the error, or 0 for the wrapper's own errors.
    public var errno: Int32
    public var message: String

    public init(_ code: Code, errno: Int32 = 0, message: String) {
        self.code = code
        self.errno = errno
        self.message = message
    }

    public var description: String {
        errno == 0 ? "\(code.rawValue): \(message)" : "\(code.rawValue) (errno \(errno)): \(message)"
    }

    /// The error for the `zmq_errno()` of the call that just failed on this thread (for code that
    /// calls libzmq directly, as the benchmarks' raw loops do).
    public static func last(_ operation: String) -> ZeroMQError {
        fromErrno(zmq_errno(), operation)
    }

    static func fromErrno(_ number: Int32, _ operation: String) -> ZeroMQError {
        let text = String(cString: zmq_strerror(number))
        let code: Code
        switch number {
        case EHOSTUNREACH: code = .unroutable
        case EAGAIN: code = .highWaterMark
        case ZMQErrno.finiteStateMachine: code = .invalidState
        case ZMQErrno.terminated: code = .contextTerminated
        case ENOTSOCK: code = .socketClosed
        case EINVAL: code = .invalidArgument
        case EADDRINUSE, EADDRNOTAVAIL: code = .addressUnavailable
        case EPROTONOSUPPORT, ZMQErrno.noCompatibleProtocol: code = .protocolNotSupported
        default: code = .other
        }
        return ZeroMQError(code, errno: number, message: "\(operation): \(text)")
    }
}

/// libzmq's own errno values (zmq.h defines them from `ZMQ_HAUSNUMERO` when the platform does not).
enum ZMQErrno {
    static let hausnumero: Int32 = 156_384_712
    static let finiteStateMachine: Int32 = hausnumero + 51
    static let noCompatibleProtocol: Int32 = hausnumero + 52
    static let terminated: Int32 = hausnumero + 53
}
