import Foundation

/// What /proc says about processes, read the one way the supervisor and the run's probes
/// (`ProcessProbe`) both need.
public enum ProcStat {
    /// The whole of a /proc file ("" when it cannot be opened). /proc files say their size is 0
    /// and are made as they are read; `String(contentsOfFile:)` gave back only the first 4 KB of
    /// a connection table (4,050 of 139,350 bytes with 600 sockets open: ProcessProbeTests saw 23
    /// of 300 connections), so this reads until the end.
    public static func readFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The fields of /proc/PID/stat after the command name (which may hold spaces and
    /// parentheses): the state first (field 3), then the parent (4), the process group (5), …,
    /// utime (14), stime (15). Nil when the process is gone.
    public static func fields(of pid: Int32) -> [Substring]? {
        let stat = readFile("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Context switches of every thread of `pid` so far, voluntary (the thread went to sleep:
    /// waiting on a lock, a socket, the disk) and not (preempted), summed over /proc/PID/task/*/status.
    /// A thread that has exited is not in the sum. Nil when the process is gone.
    public static func contextSwitches(of pid: Int32) -> Int? {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return nil }
        return threads.reduce(0) { total, thread in
            let numbers = statusNumbers("/proc/\(pid)/task/\(thread)/status")
            return total + (numbers["voluntary_ctxt_switches"] ?? 0) + (numbers["nonvoluntary_ctxt_switches"] ?? 0)
        }
    }

    /// The numeric fields of a /proc status file by name ("VmRSS:\t   76596 kB" is `VmRSS`:
    /// 76596, in the unit the file gives); empty when the file cannot be read.
    public static func statusNumbers(_ path: String) -> [Substring: Int] {
        var numbers: [Substring: Int] = [:]
        for line in readFile(path).split(separator: "\n") {
            let fields = line.split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
            guard fields.count >= 2, fields[0].last == ":", let value = Int(fields[1]) else { continue }
            numbers[fields[0].dropLast()] = value
        }
        return numbers
    }

    /// Whether `pid` is running: there, and not a zombie (which holds no file and no lock).
    public static func isRunning(_ pid: Int32) -> Bool {
        guard let state = fields(of: pid)?.first else { return false }
        return state != "Z"
    }

    /// Every process now, by id.
    public static func processIdentifiers() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    }

    /// The running (not zombie) children of `parent`.
    public static func liveChildren(of parent: Int32) -> [Int32] { live(where: 1, is: parent) }

    /// The running (not zombie) members of process group `group`.
    public static func liveMembers(ofGroup group: Int32) -> [Int32] { live(where: 2, is: group) }

    /// The running processes whose stat field `index` (of `fields(of:)`) is `value`.
    private static func live(where index: Int, is value: Int32) -> [Int32] {
        let value = Substring(String(value))
        return processIdentifiers().filter { pid in
            guard let fields = fields(of: pid), fields.count > index else { return false }
            return fields[index] == value && fields[0] != "Z"
        }
    }
}
