import Foundation

// The one piece of I/O in ERPCore: a write every module's error lines and reports share.

extension FileHandle {
    /// Writes `data`, or nothing when it cannot (a reader that went away, a full disk):
    /// Foundation's `write(_:)` traps on any error, which stopped `erp explore … | head -1` with
    /// SIGILL once SIGPIPE no longer killed it first.
    public func put(_ data: Data) { try? write(contentsOf: data) }
}
