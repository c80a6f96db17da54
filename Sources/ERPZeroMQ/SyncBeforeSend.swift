import ERPStorage
import ERPCore
import Foundation
import Logging
import ZeroMQ

/// Durable before anyone hears of it, without the service's thread waiting for the disk.
///
/// A node's databases commit with SQLite's NORMAL (`SynchronousMode.beforeSend`): a commit writes
/// its WAL frames and returns. Before a message leaves the node (a request, a reply, an answer to
/// a device) the sender calls `wait()`, which hands the WAL files written since their last sync to
/// a thread of this barrier's own and suspends until that thread's `fdatasync` of them has
/// returned. Meanwhile the service's executor runs other requests, and everything they commit
/// while a sync is under way shares the next one: under load one sync covers many commits, where
/// FULL made every commit wait for a sync of its own on the service's only thread.
///
/// A sync that fails leaves the files' state unknown (Linux may drop the pages it could not write
/// and report it once): the process logs it and exits, and the supervisor's restart recovers from
/// what is on the disk, as after a crash. Nothing that waited for that sync has been sent.
public final class SyncBeforeSend: @unchecked Sendable {
    /// What the sync thread shares with the senders, under `condition`.
    private struct Shared {
        /// Batches asked for, and the last one synced; a batch is the files handed over by one
        /// `wait()` that found commits not yet synced.
        var requested: UInt64 = 0
        var synced: UInt64 = 0
        /// Descriptors of the WAL files to sync in the next batch.
        var files: [Int32] = []
        /// Senders waiting for a batch, with its number.
        var waiters: [(batch: UInt64, continuation: UnsafeContinuation<Void, Never>)] = []
        var stopping = false
        var syncs = 0
    }

    private let condition = NSCondition()
    private var shared = Shared()
    /// The node's databases under `.beforeSend` and a descriptor of each one's WAL; confined to
    /// the node's executor, like the databases.
    private var databases: [(database: ServiceDatabase, wal: Int32)] = []
    private let sync: @Sendable (Int32) -> Int32
    private let logger: Logger
    private let failed: @Sendable (String) -> Never

    /// `sync` makes a descriptor's file durable (`fdatasync` unless a test says otherwise) and
    /// returns 0 or an errno; `failed` ends the process after a sync failed.
    public init(name: String, logger: Logger, sync: @escaping @Sendable (Int32) -> Int32 = { fdatasync($0) == 0 ? 0 : errno },
                failed: @escaping @Sendable (String) -> Never = { why in
                    FileHandle.standardError.put(Data("erp: \(why); exiting so that a restart recovers from the disk\n".utf8))
                    exit(70)
                }) {
        self.sync = sync
        self.logger = logger
        self.failed = failed
        // Named in `top -H` and perf as the service's sync thread (the kernel keeps 15 bytes).
        let thread = Thread { [self] in
            nameCurrentThread(name + "-sync")
            self.run()
        }
        thread.start()
    }

    /// Syncs made so far (each one of every file of its batch).
    public var syncCount: Int { condition.lock(); defer { condition.unlock() }; return shared.syncs }

    /// Adds a database opened under `.beforeSend`: its WAL is synced before the node sends.
    /// Called on the node's executor.
    public func add(_ database: ServiceDatabase) throws {
        let wal = open(database.logPath, O_RDONLY | O_CLOEXEC)
        guard wal >= 0 else { throw StorageError.corrupt("cannot open \(database.logPath) to sync it: errno \(errno)") }
        databases.append((database, wal))
    }

    /// Returns once everything the node committed before the call is durable. Called on the
    /// node's executor, before a message leaves; returns at once when nothing is unsynced.
    public func wait() async {
        var handed: [Int32] = []
        for entry in databases where entry.database.needsSync {
            handed.append(entry.wal)
            entry.database.markSynced()  // by the batch this call hands over
        }
        guard let batch = hand(handed) else { return }
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in park(continuation, until: batch) }
    }

    /// Hands `files` to the sync thread (nothing new when empty); the batch to wait for, or nil
    /// when everything committed so far is durable already.
    private func hand(_ files: [Int32]) -> UInt64? {
        condition.lock()
        defer { condition.unlock() }
        if !files.isEmpty {
            shared.requested &+= 1
            for fd in files where !shared.files.contains(fd) { shared.files.append(fd) }
            condition.signal()
        }
        // With nothing new, a batch handed over earlier may still be syncing: what it covers was
        // committed before this message too.
        return shared.synced >= shared.requested ? nil : shared.requested
    }

    private func park(_ continuation: UnsafeContinuation<Void, Never>, until batch: UInt64) {
        condition.lock()
        if shared.synced >= batch {
            condition.unlock()
            continuation.resume()
            return
        }
        shared.waiters.append((batch, continuation))
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while shared.files.isEmpty && !shared.stopping { condition.wait() }
            if shared.files.isEmpty {  // stopping, and nothing left to sync
                condition.unlock()
                return
            }
            let files = shared.files, upTo = shared.requested
            shared.files.removeAll(keepingCapacity: true)
            condition.unlock()

            for fd in files {
                let error = sync(fd)
                if error != 0 {
                    let why = "fdatasync of a WAL failed: \(String(cString: strerror(error)))"
                    logger.critical("\(why)")
                    failed(why)
                }
            }

            condition.lock()
            shared.synced = upTo
            shared.syncs += 1
            // `stop()` may be waiting on the condition for this batch (only it: this thread is
            // the one that waits for files, and it is here).
            if shared.stopping { condition.broadcast() }
            var ready: [UnsafeContinuation<Void, Never>] = []
            shared.waiters.removeAll { waiter in
                guard waiter.batch <= upTo else { return false }
                ready.append(waiter.continuation)
                return true
            }
            condition.unlock()
            for continuation in ready { continuation.resume() }
        }
    }

    /// Finishes the syncs handed over, stops the thread and closes the descriptors. Called on the
    /// node's executor, after its last message, before the databases close.
    public func stop() {
        condition.lock()
        shared.stopping = true
        condition.broadcast()
        while shared.synced < shared.requested { condition.wait() }
        condition.unlock()
        for entry in databases { close(entry.wal) }
        databases.removeAll()
    }
}
