import CMalloc
import ERPCore
import Foundation

/// Runs a set of child processes (one per service in `erp up`), restarts a child that dies, and
/// stops them all, in reverse order, on request. A child that keeps dying is never given up on (a
/// request that crashes a service must not take it down for good): past `restartPolicy.countMax`
/// deaths within its window each restart waits twice as long as the one before, up to
/// `restartPolicy.backoffMax`, so a broken service does not spin either.
///
/// Children are started with `posix_spawn` and each is watched by a thread of its own blocked in
/// `waitpid`: supervision must not depend on a shared thread pool that a busy process can starve
/// (Foundation's `Process` reports exits through dispatch queues, which was seen to stall here).
///
/// Each child leads a process group of its own, and every signal the supervisor sends goes to
/// the group: a service run under a tool (`ERP_WRAP`) is stopped, paused or crashed with its tool,
/// and `stop()` returns only once nothing of the group is left running (a service still shutting
/// down under its dead wrapper held its database, and the invariant check that follows a run
/// found it locked).
public final class Supervisor: @unchecked Sendable {
    public struct Child: Sendable {
        public var name: String
        public var executable: String
        public var arguments: [String]
        public var environment: [String: String]?
        /// Where the child's standard output and error go (appended); nil: inherited.
        public var logPath: String?
        public init(name: String, executable: String, arguments: [String], environment: [String: String]? = nil,
                    logPath: String? = nil) {
            self.name = name; self.executable = executable; self.arguments = arguments; self.environment = environment
            self.logPath = logPath
        }
    }

    /// When a child that died is restarted (the simulator's nodes that exit follow the same one).
    public var restartPolicy = RestartPolicy()
    /// How long children get to exit after SIGTERM before SIGKILL.
    public var stopGracePeriod: Duration = .seconds(5)
    /// Where the supervisor says what it does (starts, deaths, restarts). Standard output by
    /// default, flushed at each line: redirected to a file it would otherwise sit in a buffer.
    /// Each line carries the time, as the services' own log lines do (a restart's time is what an
    /// operator looks up first).
    public var log: @Sendable (String) -> Void = { line in
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var stamp = [CChar](repeating: 0, count: 32)
        strftime(&stamp, stamp.count, "%Y-%m-%dT%H:%M:%S+0000", &parts)
        print(String(cString: stamp) + " supervisor: " + line)
        fflush(nil)  // every stream: `stdout` itself is not concurrency-safe to name here
    }
    /// Tools to run a child under, by the child's name: the words are put before its command.
    /// Read from `ERP_WRAP` (`SERVICE=COMMAND`, several separated by `;`), e.g.
    /// `ERP_WRAP='order=heaptrack -o /tmp/order'` tracks the order service's heap from its start.
    /// Signals go to the tool and the service alike (the child's process group).
    public var wrappers: [String: [String]] = [:]

    /// Parses `ERP_WRAP`'s value; nil or empty: none. Every name must be one of `children`.
    public static func wrappers(from value: String?, children: [String]) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for entry in (value ?? "").split(separator: ";") where !entry.allSatisfy(\.isWhitespace) {
            guard let equals = entry.firstIndex(of: "=") else {
                throw SupervisorError("ERP_WRAP: '\(entry)' is not SERVICE=COMMAND")
            }
            let name = entry[..<equals].trimmingCharacters(in: .whitespaces)
            let words = entry[entry.index(after: equals)...].split(separator: " ").map(String.init)
            guard !name.isEmpty, !words.isEmpty else { throw SupervisorError("ERP_WRAP: '\(entry)' is not SERVICE=COMMAND") }
            guard children.contains(name) else {
                throw SupervisorError("ERP_WRAP names '\(name)', which is not one of the services (\(children.joined(separator: ", ")))")
            }
            result[name] = words
        }
        return result
    }

    private let lock = NSLock()
    private let children: [Child]
    private var running: [String: pid_t] = [:]
    /// Each child's deaths within the restart policy's window, as times since `started`.
    private var restarts: [String: [Duration]] = [:]
    private let started = ContinuousClock.now
    private var stopping = false
    private var restartCounts: [String: Int] = [:]
    /// Children killed on purpose (`crash`), left down until `restart`.
    private var held: Set<String> = []
    private var startCounts: [String: Int] = [:]

    public init(children: [Child]) { self.children = children }

    /// The wrappers that `ERP_WRAP` in this process's environment asks for, checked against the
    /// children's names.
    public func wrapAsEnvironmentSays() throws {
        wrappers = try Supervisor.wrappers(from: ProcessInfo.processInfo.environment["ERP_WRAP"],
                                           children: children.map(\.name))
    }

    public var restartCount: [String: Int] { lock.withLock { restartCounts } }

    /// Starts every child in order.
    public func start() throws {
        for child in children { try launch(child) }
    }

    /// The running process of a child, if any.
    public func processIdentifier(of name: String) -> Int32? { lock.withLock { running[name] } }

    /// How many times each child has been started (the first start included).
    public var startCount: [String: Int] { lock.withLock { startCounts } }

    /// Kills a child with SIGKILL (a crash: no shutdown, no flushing) and keeps it down until
    /// `restart`. Returns false if it was not running.
    @discardableResult
    public func crash(_ name: String) -> Bool {
        let pid: pid_t? = lock.withLock {
            held.insert(name)
            return running[name]
        }
        guard let pid else { return false }
        kill(-pid, SIGKILL)
        // Wait for the watcher to see it go (and for anything it ran, such as the service under
        // a wrapper), so that a quick `restart` does not race the corpse.
        while lock.withLock({ running[name] == pid }) { usleep(1_000) }
        if !Self.waitForGroup(pid, until: ContinuousClock.now + .seconds(5)) {
            // Only a process in an uninterruptible wait (a hung disk) outlives SIGKILL this long;
            // a restart now may find its files or port still held.
            log("\(name): processes of its group still running 5 s after SIGKILL")
        }
        return true
    }

    /// Starts a child that `crash` keeps down (or that is down for any reason and not running).
    public func restart(_ name: String) throws {
        guard let child = children.first(where: { $0.name == name }) else { throw SupervisorError("no child named \(name)") }
        let start: Bool = lock.withLock {
            held.remove(name)
            return running[name] == nil && !stopping
        }
        if start { try launch(child) }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, …) to a running child and what it runs (its process
    /// group). Returns false if it was not running.
    @discardableResult
    public func send(_ signal: Int32, to name: String) -> Bool {
        guard let pid = lock.withLock({ running[name] }) else { return false }
        return kill(-pid, signal) == 0
    }

    /// Whether a process of group `group` is left running (zombies aside: one orphaned by its
    /// wrapper is reaped by whoever adopted it, not by us).
    static func groupHasLiveMembers(_ group: pid_t) -> Bool {
        guard kill(-group, 0) == 0 || errno == EPERM else { return false }
        return !ProcStat.liveMembers(ofGroup: group).isEmpty
    }

    /// Waits until nothing of group `group` is left running, or `deadline`. Returns whether it is gone.
    static func waitForGroup(_ group: pid_t, until deadline: ContinuousClock.Instant) -> Bool {
        while groupHasLiveMembers(group) {
            if ContinuousClock.now >= deadline { return false }
            usleep(10_000)
        }
        return true
    }

    private func launch(_ child: Child) throws {
        var environment = ProcessInfo.processInfo.environment
        // Whose child this one is, it learns from getppid(): a parent id for this process's own
        // parent (ParentWatch) is not passed on.
        environment.removeValue(forKey: ParentWatch.parentVariable)
        if let extra = child.environment { environment.merge(extra) { $1 } }
        let wrapper = wrappers[child.name] ?? []
        let argv = (wrapper + [child.executable] + child.arguments).map { strdup($0) } + [nil]
        let envp = environment.keys.sorted().map { strdup("\($0)=\(environment[$0]!)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let logPath = child.logPath {
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Nothing of this process's but standard input, output and error: every service of an
        // `erp soak` held the soak's samples.txt and runner.log open (Foundation opens files
        // without O_CLOEXEC), and would have held any such socket or lock as long as it ran.
        let closing = erp_spawn_close_from(&actions, 3)
        guard closing == 0 else { throw SupervisorError("cannot start \(child.name): \(String(cString: strerror(closing)))") }
        // A process group of its own, led by the child: what the supervisor signals.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var pid: pid_t = 0
        // A wrapper is looked up on PATH, as a shell would; a service's own executable is a path.
        let status = wrapper.isEmpty ? posix_spawn(&pid, child.executable, &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, wrapper[0], &actions, &attributes, argv, envp)
        guard status == 0 else { throw SupervisorError("cannot start \(child.name): \(String(cString: strerror(status)))") }
        lock.withLock {
            running[child.name] = pid
            startCounts[child.name, default: 0] += 1
        }
        log("started \(child.name) (pid \(pid))" + (wrapper.isEmpty ? "" : " under \(wrapper.joined(separator: " "))"))
        let spawned = pid
        let watcher = Thread { [self] in watch(child, spawned) }
        watcher.name = "supervise-\(child.name)"
        watcher.start()
    }

    /// Runs on the child's own watcher thread until the child is gone (and restarted, if due).
    private func watch(_ child: Child, _ pid: pid_t) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let (stop, recent): (Bool, Int) = lock.withLock {
            if running[child.name] == pid { running[child.name] = nil }
            if stopping || held.contains(child.name) { return (true, 0) }
            return (false, restartPolicy.count(deathAt: ContinuousClock.now - started, in: &restarts[child.name, default: []]))
        }
        if stop { return }
        let signalled = status & 0x7f
        let how = signalled != 0 ? "killed by signal \(signalled)" : "exited with \((status >> 8) & 0xff)"
        let delay = restartPolicy.wait(afterDeaths: recent)
        if recent <= restartPolicy.countMax {
            log("\(child.name) \(how); restarting")
        } else {
            log("\(child.name) \(how); it died \(recent) times within \(restartPolicy.window.shortDescription): restarting in \(delay.shortDescription) (crash loop)")
        }
        Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) * 1e-18)
        guard lock.withLock({ !stopping && !held.contains(child.name) && running[child.name] == nil }) else { return }
        do {
            try launch(child)
            lock.withLock { restartCounts[child.name, default: 0] += 1 }
        } catch {
            log("cannot restart \(child.name): \(error)")
        }
    }

    /// SIGTERM to every child in reverse start order, SIGKILL to those still alive after the grace period.
    public func stop() {
        let targets: [(String, pid_t)] = lock.withLock {
            stopping = true
            return children.reversed().compactMap { c in running[c.name].map { (c.name, $0) } }
        }
        for (name, pid) in targets {
            log("stopping \(name)")
            kill(-pid, SIGTERM)
            kill(-pid, SIGCONT) // a paused child must run to act on SIGTERM
        }
        let deadline = ContinuousClock.now + stopGracePeriod
        for (name, pid) in targets {
            while lock.withLock({ running[name] == pid }) && ContinuousClock.now < deadline { usleep(10_000) }
            let exited = !lock.withLock({ running[name] == pid })
            if !exited || !Self.waitForGroup(pid, until: deadline) {
                log("\(name) (or what it runs) did not end on SIGTERM within the grace period; killing its group")
                kill(-pid, SIGKILL)
                while lock.withLock({ running[name] == pid }) { usleep(10_000) }
                if !Self.waitForGroup(pid, until: ContinuousClock.now + .seconds(5)) {
                    log("\(name): processes of its group still running after SIGKILL")
                }
            }
        }
    }
}

public struct SupervisorError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
