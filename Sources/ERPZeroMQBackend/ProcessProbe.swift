import ERPProduction
import Foundation

/// What /proc says about a running process: its memory by kind and its descriptors, for `erp soak`.
public struct ProcessProbe: Sendable, Equatable {
    /// VmRSS: every resident page, shared ones included.
    public var rssKiB = 0
    /// RssAnon: private anonymous memory (heap, stacks): where a leak shows.
    public var anonymousKiB = 0
    /// RssFile + RssShmem: pages of mapped files (the binary, which all the services share; SQLite's
    /// WAL index), which the kernel can take back.
    public var fileKiB = 0
    /// Open descriptors.
    public var descriptors = 0
    /// Of those, TCP connections that clients opened to a port the process listens on (the
    /// gateway's HTTP clients, a metrics scrape): they follow the clients, not the process.
    public var clientConnections = 0

    /// The descriptors the process opened itself.
    public var ownDescriptors: Int { descriptors - clientConnections }

    public init() {}

    /// Reads /proc/PID; a process that is gone reads as zeros.
    public static func read(pid: Int32) -> ProcessProbe {
        var probe = ProcessProbe()
        let status = ProcStat.statusNumbers("/proc/\(pid)/status")  // in KiB
        probe.rssKiB = status["VmRSS"] ?? 0
        probe.anonymousKiB = status["RssAnon"] ?? 0
        probe.fileKiB = (status["RssFile"] ?? 0) + (status["RssShmem"] ?? 0)
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        probe.descriptors = descriptors.count
        probe.clientConnections = clientConnections(pid: pid, descriptors: descriptors)
        return probe
    }

    /// The parent of process `pid`; nil when the process is gone.
    public static func parent(of pid: Int32) -> Int32? {
        guard let fields = ProcStat.fields(of: pid), fields.count > 1 else { return nil }
        return Int32(fields[1])
    }

    /// The process that runs `erp serve SERVICE`: `pid` itself, or, when a tool runs the service
    /// as its child or grandchild (`ERP_WRAP`, such as heaptrack), the one under it that does;
    /// `pid` when none does (yet).
    public static func serviceProcess(_ service: String, under pid: Int32) -> Int32 {
        process(under: pid) { isServe(service, arguments: $0) } ?? pid
    }

    /// Whether `arguments` (a command line, program first) run `serve SERVICE` as the program's
    /// own first words: a wrapper's command line holds the same words further on.
    static func isServe(_ service: String, arguments: [Substring]) -> Bool {
        arguments.count > 2 && arguments[1] == "serve" && arguments[2] == service
    }

    /// `pid`, or the nearest process under it (at most four generations down, the lower process
    /// id first among equals), whose command line satisfies `matches`.
    static func process(under pid: Int32, where matches: ([Substring]) -> Bool) -> Int32? {
        func arguments(_ pid: Int32) -> [Substring] {
            var text = Substring(ProcStat.readFile("/proc/\(pid)/cmdline"))
            if text.last == "\0" { text = text.dropLast() }
            return text.split(separator: "\0", omittingEmptySubsequences: false)
        }
        if matches(arguments(pid)) { return pid }
        // Every process's parent, from one pass over /proc.
        var children: [Int32: [Int32]] = [:]
        for child in ProcStat.processIdentifiers() {
            guard let parent = parent(of: child) else { continue }
            children[parent, default: []].append(child)
        }
        var generation = [pid]
        for _ in 0..<4 {
            generation = generation.flatMap { children[$0] ?? [] }.sorted()
            if let found = generation.first(where: { matches(arguments($0)) }) { return found }
        }
        return nil
    }

    /// How many of the descriptors are TCP connections accepted on a port the process listens on:
    /// its sockets (`socket:[INODE]` links in /proc/PID/fd) matched against /proc/PID/net/tcp{,6}
    /// (local address, state, inode).
    static func clientConnections(pid: Int32, descriptors: [String]) -> Int {
        var sockets = Set<Substring>()
        for fd in descriptors {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                  target.hasPrefix("socket:[") else { continue }
            sockets.insert(Substring(target).dropFirst(8).dropLast())
        }
        return clientConnections(sockets: sockets, tables: ["tcp", "tcp6"].map { ProcStat.readFile("/proc/\(pid)/net/\($0)") })
    }

    /// Of `sockets` (inodes), how many the connection tables (/proc/PID/net/tcp and tcp6's text)
    /// list as connected from a port that one of them listens on. Each inode counts once: the
    /// kernel writes a table in pieces while connections come and go, and a read of the gateway's
    /// under load listed some socket twice in 4 of 300 reads; counted twice, a client's connection
    /// made the process's own descriptors look one fewer, and a soak's earlier floor too low.
    static func clientConnections(sockets: Set<Substring>, tables: [String]) -> Int {
        var listening = Set<Substring>()
        var connected: [Substring: Substring] = [:]   // inode: local port
        for text in tables {
            for line in text.split(separator: "\n").dropFirst() {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 9, sockets.contains(fields[9]), let port = fields[1].split(separator: ":").last else { continue }
                if fields[3] == "0A" { listening.insert(port) } else { connected[fields[9]] = port }
            }
        }
        return connected.values.filter { listening.contains($0) }.count
    }
}
