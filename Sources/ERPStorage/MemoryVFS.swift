// The simulator's disks: SQLite files kept in memory by a VFS of our own, under SQLite itself, so
// the services' real SQL and GRDB code run unchanged while the simulator decides what a disk does.
//
// - No file I/O: a simulated order's writes are memory copies, not system calls.
// - Power loss: a file remembers what was written since its last sync; a power loss undoes all
//   of it, then lets each write back in, drop out or tear at a sector, as the seed chooses, as a
//   machine that loses its page cache would.
// - Power cuts inside a write: the loss can land in the middle of a commit, at a write or sync
//   chosen by the seed, rather than between two transactions.
// - Disk faults: a node's writes can fail with SQLITE_FULL or SQLITE_IOERR for a while, and its
//   syncs can take (virtual) time.
//
// The VFS becomes SQLite's default the first time a volume is made (GRDB opens connections with
// the default VFS). Files outside every volume pass straight through to SQLite's `unix` VFS, so a
// process that also runs real services or reads real files is unaffected.
import ERPCore
import Foundation
import GRDBSQLite
import Synchronization

/// A directory whose SQLite files (those directly in it) live in memory while the volume is open. Made by a simulated
/// world for its storage directory; `flush()` writes the files out when the world ends, so reports
/// and checkers read them as ordinary files afterwards.
public final class MemoryVolume: @unchecked Sendable {
    // @unchecked Sendable: used by the connections of one world, which run on the world's thread
    // one at a time; the registry that finds a volume from a path is locked.
    public let directory: String
    /// Whether writes remember what they overwrote until the next sync, which a power loss needs.
    /// Off, a write is a plain copy.
    public let tracksUnsynced: Bool
    /// Virtual time in nanoseconds, for slow syncs.
    var now: () -> Int64
    var files: [String: MemoryFile] = [:]
    private var disks: [(prefix: String, disk: SimulatedDisk)] = []
    private let defaultDisk = SimulatedDisk()

    public init(directory: String, tracksUnsynced: Bool, now: @escaping () -> Int64) {
        self.directory = Self.absolute(directory)
        self.tracksUnsynced = tracksUnsynced
        self.now = now
        MemoryVFS.register(self)
    }

    /// `directory` as SQLite names the files in it: absolute, symbolic links resolved (SQLite's
    /// `unix` VFS makes every name so before opening it).
    public static func absolute(_ directory: String) -> String {
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        if realpath(absolute, &resolved) != nil {
            return String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let standardized = URL(fileURLWithPath: absolute).standardizedFileURL.path
        return standardized.count > 1 && standardized.hasSuffix("/") ? String(standardized.dropLast()) : standardized
    }

    /// The disk of the files whose names start with `prefix` (a node's `<node>-`). Make it before
    /// the files open: a connection keeps the disk its file had when it opened.
    public func disk(forPrefix prefix: String) -> SimulatedDisk {
        if let found = disks.first(where: { $0.prefix == prefix }) { return found.disk }
        let disk = SimulatedDisk()
        disks.append((prefix, disk))
        // Longest prefix first, so that `iot-gateway-` wins over a shorter one that also matches.
        disks.sort { $0.prefix.count > $1.prefix.count }
        return disk
    }

    func disk(ofPath path: String) -> SimulatedDisk {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return disks.first { name.hasPrefix($0.prefix) }?.disk ?? defaultDisk
    }

    /// Paths of the files whose names start with `prefix`, sorted.
    public func paths(withPrefix prefix: String) -> [String] {
        files.keys.filter { ($0.split(separator: "/").last.map(String.init) ?? $0).hasPrefix(prefix) }.sorted()
    }

    /// Deletes the files whose names start with `prefix` (a lost disk). Their connections must be
    /// closed.
    public func removeFiles(withPrefix prefix: String) -> [String] {
        let gone = paths(withPrefix: prefix)
        for path in gone { files[path] = nil }
        return gone
    }

    /// The power goes off under the files whose names start with `prefix`: each loses what was
    /// written since its last sync, except what `random` lets through whole or torn. Connections
    /// still open on them write from now on into copies nobody reads (closing them, as the crash
    /// that follows does, cannot checkpoint into the survivors), until `powerRestored(prefix:)`.
    /// Requires `tracksUnsynced`.
    public func powerLoss(prefix: String, random: any RandomSource) -> PowerLossReport {
        precondition(tracksUnsynced, "a power loss needs a volume that tracks unsynced writes")
        var report = PowerLossReport()
        disk(forPrefix: prefix).poweredOff = true
        for path in paths(withPrefix: prefix) {
            guard let file = files[path] else { continue }
            files[path] = file.survivor(random: random, report: &report)
        }
        return report
    }

    /// Ends the window opened by `powerLoss(prefix:random:)`: the node may open its files again.
    public func powerRestored(prefix: String) {
        disk(forPrefix: prefix).poweredOff = false
    }

    /// Arms a power cut inside the writes of the files whose names start with `prefix`: the power
    /// fails during the `operation`-th write, truncation or sync of those files from now. A write
    /// lands first (so it is among the unsynced writes the loss keeps, loses or tears); a sync never
    /// completes. Then the loss happens as `powerLoss(prefix:random:)` does, and `fired` runs with
    /// its report, inside SQLite's call: it must not touch the database (it schedules the crash).
    /// What the interrupted transaction writes after that goes into copies nobody reads.
    /// `id` names this arming for `disarmPowerCut(prefix:id:)`; arming again replaces a cut that
    /// has not happened, and says so (true).
    @discardableResult
    public func armPowerCut(prefix: String, id: Int, atOperation operation: Int, random: any RandomSource,
                            fired: @escaping (PowerLossReport) -> Void) -> Bool {
        precondition(tracksUnsynced, "a power cut needs a volume that tracks unsynced writes")
        let disk = disk(forPrefix: prefix)
        let replaced = disk.powerCut != nil
        disk.powerCut = SimulatedDisk.PowerCut(id: id, remaining: max(1, operation)) { [unowned self] in
            fired(self.powerLoss(prefix: prefix, random: random))
        }
        return replaced
    }

    /// Takes back a power cut that has not happened (only the arming `id`, when given); whether
    /// one was taken back.
    @discardableResult
    public func disarmPowerCut(prefix: String, id: Int? = nil) -> Bool {
        let disk = disk(forPrefix: prefix)
        guard let cut = disk.powerCut, id == nil || cut.id == id else { return false }
        disk.powerCut = nil
        return true
    }

    /// Takes back every power cut that has not happened (the heal phase).
    public func disarmEveryPowerCut() {
        for entry in disks { entry.disk.powerCut = nil }
    }

    /// Writes every file to its path on the real disk (replacing what is there), then stops
    /// serving the directory: later connections open the real files. Call when no connection is
    /// open on the volume.
    public func flush() throws {
        MemoryVFS.unregister(self)
        for (path, file) in files.sorted(by: { $0.key < $1.key }) {
            let data = file.contents()
            guard FileManager.default.createFile(atPath: path, contents: data) else {
                throw StorageError.corrupt("cannot write \(path) out of the simulated disk")
            }
        }
        files.removeAll()
    }

    /// Stops serving the directory and forgets the files. (The registry holds the volume until
    /// then: its owner, the world, closes it when it goes.)
    public func close() {
        MemoryVFS.unregister(self)
        files.removeAll()
    }
}

/// What a power loss did to a node's files, for the trace.
public struct PowerLossReport: Sendable, Hashable {
    public var writesKept = 0
    public var writesLost = 0
    public var writesTorn = 0
    public var description: String { "unsynced writes: \(writesKept) kept, \(writesLost) lost, \(writesTorn) torn" }
}

/// One node's disk as its faults see it.
public final class SimulatedDisk: @unchecked Sendable {
    public enum WriteFailure: Sendable, Hashable {
        /// `SQLITE_FULL`: the disk is full.
        case full
        /// `SQLITE_IOERR_WRITE`: the device failed the write.
        case ioError
    }
    /// While set, every write to the disk's files fails so.
    public var writeFailure: WriteFailure?
    /// Each sync takes this long (virtual nanoseconds).
    public var syncLatencyNanoseconds: Int64 = 0
    /// When the disk finishes the syncs asked of it so far (virtual nanoseconds).
    public internal(set) var busyUntil: Int64 = 0
    /// When the last sync asked for starts (or started): later than now while it waits behind
    /// another.
    private var lastSyncStart: Int64 = 0
    /// How many files the last sync covers (0 for SQLite's own, which covers no later commit).
    private var lastSyncFiles: Int64 = 0
    /// Inside `syncBatch`: the syncs are counted, and timed as one batch when it ends.
    private var batchSyncs: Int?
    /// Between a power loss and the crash that follows it: opens get scratch files, deletes do
    /// nothing, and the node sends nothing (a dead machine).
    public internal(set) var poweredOff = false
    /// A power cut waiting for the disk's next operations (`MemoryVolume.armPowerCut`).
    struct PowerCut {
        let id: Int
        var remaining: Int
        let fire: () -> Void
    }
    var powerCut: PowerCut?
    public private(set) var syncs = 0
    public private(set) var failedWrites = 0

    public init() {}

    func noteSync(now: Int64) {
        syncs += 1
        if let batch = batchSyncs { batchSyncs = batch + 1; return }
        // SQLite's own syncs (a commit under FULL, a checkpoint) run on the service's thread, one
        // after the other, each after whatever the disk was doing.
        queueSync(lasting: syncLatencyNanoseconds, now: now)
        lastSyncFiles = 0
    }

    /// A sync of `length` that starts when the disk is done with what it was asked before.
    private func queueSync(lasting length: Int64, now: Int64) {
        guard length > 0 else { return }
        lastSyncStart = max(busyUntil, now)
        busyUntil = lastSyncStart + length
    }

    /// Times the syncs `body` makes before a node sends as production's sync thread
    /// (`SyncBeforeSend`) makes them: one batch of them covers everything committed before it
    /// starts. With the disk idle it starts now. While a batch is under way, what was committed
    /// since it started needs the next one, which starts when it ends; until then every sender
    /// shares that next batch instead of queueing one of its own (a slow disk then delays a burst
    /// of messages by two syncs, not by one sync per message). A sender whose commits are in more
    /// files than the waiting batch syncs adds the syncs of the others to it. Messages leave at
    /// `busyUntil`.
    public func syncBatch(now: Int64, _ body: () throws -> Void) rethrows {
        batchSyncs = 0
        defer {
            let files = Int64(batchSyncs ?? 0)
            batchSyncs = nil
            // A batch that has not started (or starts at this instant) covers these commits too.
            let joinsTheLast = now < busyUntil && lastSyncStart >= now
            if !joinsTheLast {
                if files > 0 {
                    queueSync(lasting: files * syncLatencyNanoseconds, now: now)
                    lastSyncFiles = files
                }
            } else if files > lastSyncFiles {
                busyUntil += (files - lastSyncFiles) * syncLatencyNanoseconds
                lastSyncFiles = files
            }
        }
        try body()
    }

    func noteFailedWrite() { failedWrites += 1 }

    /// Counts one write, truncation or sync against an armed power cut; fires it on its operation.
    func countTowardsPowerCut() {
        guard var cut = powerCut else { return }
        cut.remaining -= 1
        if cut.remaining > 0 { powerCut = cut; return }
        powerCut = nil
        cut.fire()
    }
}

/// One file's bytes, in chunks so that a growing database never copies itself whole.
final class MemoryFile {
    static let chunkSize = 64 * 1024
    static let sectorSize = 512
    private var chunks: [UnsafeMutableRawPointer] = []
    private(set) var size = 0
    /// What was written since the last sync, oldest first (nil: not tracked).
    private var unsynced: [Change]?

    /// A write (new bytes at an offset, the bytes it overwrote and the size before it) or a
    /// truncation (the size before it and the tail it cut off).
    enum Change {
        case write(offset: Int, bytes: [UInt8], overwritten: [UInt8], sizeBefore: Int)
        case truncate(sizeBefore: Int, tail: [UInt8])
    }

    init(tracksUnsynced: Bool) {
        unsynced = tracksUnsynced ? [] : nil
    }

    deinit { for chunk in chunks { chunk.deallocate() } }

    private func reserve(_ end: Int) {
        while chunks.count * Self.chunkSize < end {
            let chunk = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
            chunk.initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkSize)
            chunks.append(chunk)
        }
    }

    /// Copies `count` bytes at `offset` into `buffer`; past the end reads zeros. Returns how many
    /// bytes were in the file.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, offset: Int) -> Int {
        let available = max(0, min(count, size - offset))
        copyOut(into: buffer, count: available, offset: offset)
        if available < count { (buffer + available).initializeMemory(as: UInt8.self, repeating: 0, count: count - available) }
        return available
    }

    private func copyOut(into buffer: UnsafeMutableRawPointer, count: Int, offset: Int) {
        var done = 0
        while done < count {
            let position = offset + done
            let chunk = position / Self.chunkSize, within = position % Self.chunkSize
            let n = min(count - done, Self.chunkSize - within)
            (buffer + done).copyMemory(from: chunks[chunk] + within, byteCount: n)
            done += n
        }
    }

    func write(from buffer: UnsafeRawPointer, count: Int, offset: Int) {
        if unsynced != nil {
            let overlap = max(0, min(count, size - offset))
            var overwritten = [UInt8](repeating: 0, count: overlap)
            overwritten.withUnsafeMutableBytes { copyOut(into: $0.baseAddress!, count: overlap, offset: offset) }
            let bytes = [UInt8](UnsafeRawBufferPointer(start: buffer, count: count))
            unsynced!.append(.write(offset: offset, bytes: bytes, overwritten: overwritten, sizeBefore: size))
        }
        place(buffer, count: count, offset: offset)
    }

    private func place(_ buffer: UnsafeRawPointer, count: Int, offset: Int) {
        reserve(offset + count)
        var done = 0
        while done < count {
            let position = offset + done
            let chunk = position / Self.chunkSize, within = position % Self.chunkSize
            let n = min(count - done, Self.chunkSize - within)
            (chunks[chunk] + within).copyMemory(from: buffer + done, byteCount: n)
            done += n
        }
        size = max(size, offset + count)
    }

    func truncate(to newSize: Int) {
        guard newSize < size else { return }
        if unsynced != nil {
            var tail = [UInt8](repeating: 0, count: size - newSize)
            tail.withUnsafeMutableBytes { copyOut(into: $0.baseAddress!, count: size - newSize, offset: newSize) }
            unsynced!.append(.truncate(sizeBefore: size, tail: tail))
        }
        cut(to: newSize)
    }

    /// Shrinks to `newSize`, zeroing what is cut so that growing again reads zeros.
    private func cut(to newSize: Int) {
        let keepChunks = (newSize + Self.chunkSize - 1) / Self.chunkSize
        while chunks.count > keepChunks { chunks.removeLast().deallocate() }
        let within = newSize % Self.chunkSize
        if within > 0, keepChunks > 0 {
            (chunks[keepChunks - 1] + within).initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkSize - within)
        }
        size = newSize
    }

    /// Everything written so far is durable.
    func sync() {
        if unsynced != nil { unsynced!.removeAll(keepingCapacity: true) }
    }

    /// The file as the disk holds it after a power loss: the durable bytes, then each unsynced
    /// change in order kept, lost, or (a write) torn after a whole number of sectors.
    func survivor(random: any RandomSource, report: inout PowerLossReport) -> MemoryFile {
        let copy = MemoryFile(tracksUnsynced: true)
        var all = [UInt8](repeating: 0, count: size)
        all.withUnsafeMutableBytes { copyOut(into: $0.baseAddress!, count: size, offset: 0) }
        all.withUnsafeBytes { copy.place($0.baseAddress!, count: size, offset: 0) }
        let changes = unsynced ?? []
        // Back to the last sync: undo, newest first.
        for change in changes.reversed() {
            switch change {
            case .write(let offset, _, let overwritten, let sizeBefore):
                overwritten.withUnsafeBytes { if !overwritten.isEmpty { copy.place($0.baseAddress!, count: overwritten.count, offset: offset) } }
                if copy.size > sizeBefore { copy.cut(to: sizeBefore) }
            case .truncate(let sizeBefore, let tail):
                tail.withUnsafeBytes { copy.place($0.baseAddress!, count: tail.count, offset: sizeBefore - tail.count) }
            }
        }
        // Then what reached the platter anyway, oldest first.
        for change in changes {
            let draw = random.unit()
            switch change {
            case .write(let offset, let bytes, _, _):
                if draw < 0.45 {
                    report.writesKept += 1
                    bytes.withUnsafeBytes { copy.place($0.baseAddress!, count: bytes.count, offset: offset) }
                } else if draw < 0.8 {
                    report.writesLost += 1
                } else {
                    // Whole sectors from the start of the write, counted on the file's sector grid.
                    let end = offset + bytes.count
                    let firstBoundary = (offset / Self.sectorSize + 1) * Self.sectorSize
                    let boundaries = stride(from: firstBoundary, to: end, by: Self.sectorSize).map { $0 }
                    let cut = boundaries.isEmpty ? offset : boundaries[random.int(in: 0...(boundaries.count - 1))]
                    report.writesTorn += 1
                    if cut > offset { bytes.withUnsafeBytes { copy.place($0.baseAddress!, count: cut - offset, offset: offset) } }
                }
            case .truncate(let sizeBefore, let tail):
                if draw < 0.5 { copy.cut(to: min(copy.size, sizeBefore - tail.count)) }
            }
        }
        return copy
    }

    func contents() -> Data {
        var data = Data(count: size)
        data.withUnsafeMutableBytes { copyOut(into: $0.baseAddress!, count: size, offset: 0) }
        return data
    }
}

// SQLite's extended I/O error codes are macros Swift does not import.
private let ioErrorShortRead = SQLITE_IOERR | (2 << 8)
private let ioErrorWrite = SQLITE_IOERR | (3 << 8)
private let ioErrorFsync = SQLITE_IOERR | (4 << 8)
private let ioErrorTruncate = SQLITE_IOERR | (6 << 8)

/// The VFS itself: registration, and the C callbacks SQLite calls.
enum MemoryVFS {
    private static let volumes = Mutex<[MemoryVolume]>([])

    /// SQLite's own VFS for files outside every volume.
    nonisolated(unsafe) private static var unix: UnsafeMutablePointer<sqlite3_vfs>!

    private static let installed: Bool = {
        guard let found = sqlite3_vfs_find("unix") else { fatalError("SQLite has no unix VFS") }
        unix = found
        var vfs = found.pointee
        vfs.zName = UnsafePointer(strdup("erp-memory"))
        vfs.szOsFile = max(found.pointee.szOsFile, Int32(MemoryLayout<MemoryFileSlot>.stride))
        vfs.pNext = nil
        vfs.pAppData = nil
        vfs.xOpen = memoryOpen
        vfs.xDelete = memoryDelete
        vfs.xAccess = memoryAccess
        let pointer = UnsafeMutablePointer<sqlite3_vfs>.allocate(capacity: 1)
        pointer.initialize(to: vfs)
        let rc = sqlite3_vfs_register(pointer, 1)
        precondition(rc == SQLITE_OK, "cannot register the memory VFS: \(rc)")
        return true
    }()

    static func register(_ volume: MemoryVolume) {
        _ = installed
        volumes.withLock { list in
            list.removeAll { $0 === volume || $0.directory == volume.directory }
            list.append(volume)
        }
    }

    static func unregister(_ volume: MemoryVolume) {
        volumes.withLock { list in list.removeAll { $0 === volume } }
    }

    /// The volume serving the folder `path` is directly in. Only direct children: a world whose
    /// folder holds other folders (the temporary directory, say) does not take their files.
    static func volume(containing path: String) -> MemoryVolume? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        let folder = path[..<slash]
        return volumes.withLock { list in list.first { $0.directory == folder } }
    }

    /// The volume serving `directory` itself, if any.
    static func volume(forDirectory directory: String) -> MemoryVolume? {
        volumes.withLock { list in list.first { $0.directory == directory } }
    }

    // MARK: Files

    /// What follows SQLite's `sqlite3_file` header in an open memory file: the handle, retained.
    struct MemoryFileSlot {
        var base: sqlite3_file
        var handle: UnsafeMutableRawPointer?
    }

    final class Handle {
        let file: MemoryFile
        let volume: MemoryVolume
        let disk: SimulatedDisk
        let path: String
        let deleteOnClose: Bool
        init(file: MemoryFile, volume: MemoryVolume, disk: SimulatedDisk, path: String, deleteOnClose: Bool) {
            self.file = file; self.volume = volume; self.disk = disk; self.path = path; self.deleteOnClose = deleteOnClose
        }
    }

    static func handle(_ file: UnsafeMutablePointer<sqlite3_file>?) -> Handle {
        let slot = UnsafeMutableRawPointer(file!).assumingMemoryBound(to: MemoryFileSlot.self)
        return Unmanaged<Handle>.fromOpaque(slot.pointee.handle!).takeUnretainedValue()
    }

    nonisolated(unsafe) static let methods: UnsafePointer<sqlite3_io_methods> = {
        let pointer = UnsafeMutablePointer<sqlite3_io_methods>.allocate(capacity: 1)
        pointer.initialize(to: sqlite3_io_methods(
            iVersion: 1,
            xClose: { file in
                let slot = UnsafeMutableRawPointer(file!).assumingMemoryBound(to: MemoryFileSlot.self)
                let handle = Unmanaged<Handle>.fromOpaque(slot.pointee.handle!)
                let h = handle.takeUnretainedValue()
                if h.deleteOnClose, h.volume.files[h.path] === h.file { h.volume.files[h.path] = nil }
                handle.release()
                slot.pointee.handle = nil
                return SQLITE_OK
            },
            xRead: { file, buffer, amount, offset in
                let h = MemoryVFS.handle(file)
                let got = h.file.read(into: buffer!, count: Int(amount), offset: Int(offset))
                return got < Int(amount) ? ioErrorShortRead : SQLITE_OK
            },
            xWrite: { file, buffer, amount, offset in
                let h = MemoryVFS.handle(file)
                if let failure = h.disk.writeFailure {
                    h.disk.noteFailedWrite()
                    return failure == .full ? SQLITE_FULL : ioErrorWrite
                }
                h.file.write(from: buffer!, count: Int(amount), offset: Int(offset))
                h.disk.countTowardsPowerCut()
                return SQLITE_OK
            },
            xTruncate: { file, size in
                let h = MemoryVFS.handle(file)
                if h.disk.writeFailure != nil { h.disk.noteFailedWrite(); return ioErrorTruncate }
                h.file.truncate(to: Int(size))
                h.disk.countTowardsPowerCut()
                return SQLITE_OK
            },
            xSync: { file, _ in
                let h = MemoryVFS.handle(file)
                if h.disk.writeFailure == .ioError { h.disk.noteFailedWrite(); return ioErrorFsync }
                h.disk.countTowardsPowerCut()
                // Cut before it completed (now, or earlier in this transaction): nothing to sync;
                // the file is a copy nobody reads.
                if h.disk.poweredOff { return SQLITE_OK }
                h.file.sync()
                h.disk.noteSync(now: h.volume.now())
                return SQLITE_OK
            },
            xFileSize: { file, size in
                size!.pointee = sqlite3_int64(MemoryVFS.handle(file).file.size)
                return SQLITE_OK
            },
            // One process, and one connection to a file at a time: locks always succeed.
            xLock: { _, _ in SQLITE_OK },
            xUnlock: { _, _ in SQLITE_OK },
            xCheckReservedLock: { _, result in result!.pointee = 0; return SQLITE_OK },
            xFileControl: { _, _, _ in SQLITE_NOTFOUND },
            xSectorSize: { _ in Int32(MemoryFile.sectorSize) },
            // A torn write damages only the sectors it was writing.
            xDeviceCharacteristics: { _ in SQLITE_IOCAP_POWERSAFE_OVERWRITE },
            xShmMap: nil, xShmLock: nil, xShmBarrier: nil, xShmUnmap: nil, xFetch: nil, xUnfetch: nil))
        return UnsafePointer(pointer)
    }()
}

private func memoryOpen(_ vfs: UnsafeMutablePointer<sqlite3_vfs>?, _ name: sqlite3_filename?, _ file: UnsafeMutablePointer<sqlite3_file>?,
                        _ flags: Int32, _ outFlags: UnsafeMutablePointer<Int32>?) -> Int32 {
    let unix = MemoryVFS.unixVFS
    guard let name, let volume = MemoryVFS.volume(containing: String(cString: name)) else {
        return unix.pointee.xOpen(unix, name, file, flags, outFlags)
    }
    let path = String(cString: name)
    let slot = UnsafeMutableRawPointer(file!).assumingMemoryBound(to: MemoryVFS.MemoryFileSlot.self)
    slot.pointee.base.pMethods = nil
    let disk = volume.disk(ofPath: path)
    let memoryFile: MemoryFile
    if disk.poweredOff {
        // Between a power loss and its crash: whatever the dying process writes goes nowhere.
        memoryFile = MemoryFile(tracksUnsynced: false)
    } else if let existing = volume.files[path] {
        memoryFile = existing
    } else {
        guard flags & SQLITE_OPEN_CREATE != 0 else { return SQLITE_CANTOPEN }
        memoryFile = MemoryFile(tracksUnsynced: volume.tracksUnsynced)
        volume.files[path] = memoryFile
    }
    let handle = MemoryVFS.Handle(file: memoryFile, volume: volume, disk: disk, path: path,
                                  deleteOnClose: flags & SQLITE_OPEN_DELETEONCLOSE != 0)
    slot.pointee.handle = Unmanaged.passRetained(handle).toOpaque()
    slot.pointee.base.pMethods = MemoryVFS.methods
    outFlags?.pointee = flags
    return SQLITE_OK
}

private func memoryDelete(_ vfs: UnsafeMutablePointer<sqlite3_vfs>?, _ name: UnsafePointer<CChar>?, _ syncDirectory: Int32) -> Int32 {
    let unix = MemoryVFS.unixVFS
    guard let name, let volume = MemoryVFS.volume(containing: String(cString: name)) else {
        return unix.pointee.xDelete(unix, name, syncDirectory)
    }
    let path = String(cString: name)
    if volume.disk(ofPath: path).poweredOff { return SQLITE_OK }
    volume.files[path] = nil
    return SQLITE_OK
}

private func memoryAccess(_ vfs: UnsafeMutablePointer<sqlite3_vfs>?, _ name: UnsafePointer<CChar>?, _ flags: Int32,
                          _ result: UnsafeMutablePointer<Int32>?) -> Int32 {
    let unix = MemoryVFS.unixVFS
    guard let name, let volume = MemoryVFS.volume(containing: String(cString: name)) else {
        return unix.pointee.xAccess(unix, name, flags, result)
    }
    result?.pointee = volume.files[String(cString: name)] == nil ? 0 : 1
    return SQLITE_OK
}

extension MemoryVFS {
    static var unixVFS: UnsafeMutablePointer<sqlite3_vfs> {
        _ = installed
        return unix
    }
}
