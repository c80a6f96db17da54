import Foundation

/// Runs a set of child processes (one per service in `erp up`), restarts a child that dies, and
/// stops them all, in reverse order, on request. A child that keeps dying is given up on after
/// `restartCountMax` restarts within `restartWindow`, so a broken service does not spin forever.
public final class Supervisor: @unchecked Sendable {
    public struct Child: Sendable {
        public var name: String
        public var executable: String
        public var arguments: [String]
        public var environment: [String: String]?
        public init(name: String, executable: String, arguments: [String], environment: [String: String]? = nil) {
            self.name = name; self.executable = executable; self.arguments = arguments; self.environment = environment
        }
    }

    public var restartDelay: Duration = .milliseconds(200)
    public var restartCountMax = 5
    public var restartWindow: Duration = .seconds(60)
    /// How long children get to exit after SIGTERM before SIGKILL.
    public var stopGracePeriod: Duration = .seconds(5)
    public var log: @Sendable (String) -> Void = { print($0) }

    private let lock = NSLock()
    private var children: [Child]
    private var processes: [String: Process] = [:]
    private var restarts: [String: [ContinuousClock.Instant]] = [:]
    private var stopping = false
    public private(set) var restartCount: [String: Int] = [:]

    public init(children: [Child]) { self.children = children }

    /// Starts every child in order.
    public func start() throws {
        for child in children { try launch(child) }
    }

    /// The running process of a child (for tests and for status lines).
    public func processIdentifier(of name: String) -> Int32? {
        lock.withLock { processes[name].map { $0.processIdentifier } }
    }

    private func launch(_ child: Child) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: child.executable)
        process.arguments = child.arguments
        if let environment = child.environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.terminationHandler = { [weak self] p in self?.exited(child, p) }
        try process.run()
        lock.withLock { processes[child.name] = process }
        log("started \(child.name) (pid \(process.processIdentifier))")
    }

    private func exited(_ child: Child, _ process: Process) {
        let (stop, recent): (Bool, Int) = lock.withLock {
            guard processes[child.name] === process else { return (true, 0) }
            processes[child.name] = nil
            if stopping { return (true, 0) }
            let now = ContinuousClock.now
            var times = (restarts[child.name] ?? []).filter { now - $0 < restartWindow }
            times.append(now)
            restarts[child.name] = times
            return (false, times.count)
        }
        if stop { return }
        let how = process.terminationReason == .uncaughtSignal ? "killed by signal \(process.terminationStatus)" : "exited with \(process.terminationStatus)"
        guard recent <= restartCountMax else {
            log("\(child.name) \(how); it died \(recent) times within \(restartWindow): not restarting")
            return
        }
        log("\(child.name) \(how); restarting")
        // Restart from another queue, not inside Foundation's termination handler, which must not
        // be held up (nor re-entered by launching a process from it).
        DispatchQueue.global().asyncAfter(deadline: .now() + restartDelay.seconds) { [self] in
            let stillRunning = lock.withLock { !stopping }
            guard stillRunning else { return }
            do {
                try launch(child)
                lock.withLock { restartCount[child.name, default: 0] += 1 }
            } catch {
                log("cannot restart \(child.name): \(error)")
            }
        }
    }

    /// SIGTERM to every child in reverse start order, SIGKILL to those still alive after the grace period.
    public func stop() {
        let running: [(String, Process)] = lock.withLock {
            stopping = true
            return children.reversed().compactMap { c in processes[c.name].map { (c.name, $0) } }
        }
        for (name, process) in running where process.isRunning {
            log("stopping \(name)")
            process.terminate()
        }
        let deadline = ContinuousClock.now + stopGracePeriod
        for (name, process) in running {
            while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning {
                log("\(name) ignored SIGTERM; killing it")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        lock.withLock { processes.removeAll() }
    }
}

extension Duration {
    fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
