import Foundation

/// A value behind a lock, with the shape of `Synchronization.Mutex` (`withLock`).
///
/// Why not `Mutex` itself: on Linux its futex-based lock lives in the standard library, which
/// ThreadSanitizer does not see, so `swift test --sanitize=thread` reports every Mutex-protected
/// access of this threaded module as a race. `NSLock` is a pthread mutex, which ThreadSanitizer
/// understands, so the sanitizer checks the real synchronisation here instead of drowning in noise.
/// Public for the modules built on the wrapper, whose state is shared with its threads the same way.
public final class Locked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only reached through `withLock`, while `lock` is held. As with
    // Mutex, `init` and `withLock` traffic in `sending` values, so non-Sendable state inside (the
    // wake-up socket pointer of an I/O thread's mailbox) cannot escape the lock's region.
    private let lock = NSLock()
    private var value: Value

    public init(_ value: sending Value) {
        self.value = value
    }

    public func withLock<Result>(_ body: (inout sending Value) throws -> sending Result) rethrows -> sending Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
