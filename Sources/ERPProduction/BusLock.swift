import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Says that an event bus runs on a data folder: the bus process holds an exclusive `flock` on
/// `DIR/event-bus.running` for its life (the kernel lets go when it ends, even by SIGKILL), and
/// `erp events requeue|replay DIR` looks before it writes. A running bus keeps the head of each
/// queue in memory and never reads rows written behind its back: a requeue written into its
/// folder was reported done and delivered only after the bus restarted (an operator's trial).
public enum BusLock {
    public static let fileName = "event-bus.running"

    /// Takes the lock for this process's life. Throws when another bus holds it.
    public static func hold(in directory: String) throws {
        let path = directory + "/" + fileName
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BusLockError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw BusLockError("another event bus runs on \(directory) (it holds \(path))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        // The descriptor stays open, and the lock held, until the process ends.
    }

    /// Whether a bus runs on `directory` now (some process holds its lock).
    public static func isHeld(in directory: String) -> Bool {
        let fd = open(directory + "/" + fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }
}

public struct BusLockError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
