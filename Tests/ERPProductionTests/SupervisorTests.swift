import ERPProduction
import Foundation
import Testing
import ZeroMQTestSupport

@Suite struct SupervisorTests {
    /// A killed child comes back with a new pid; stop ends every child. (The children sleep for an
    /// hour: one that ended by itself would be restarted too, and this test can be slow when the
    /// suite runs alongside it.)
    @Test func restartsAKilledChildAndStopsAll() async throws {
        let supervisor = Supervisor(children: [
            .init(name: "a", executable: "/bin/sleep", arguments: ["3600"]),
            .init(name: "b", executable: "/bin/sleep", arguments: ["3600"]),
        ])
        supervisor.log = { _ in }
        supervisor.restartPolicy.delay = .milliseconds(10)
        supervisor.stopGracePeriod = .milliseconds(500)
        try supervisor.start()
        let first = try #require(supervisor.processIdentifier(of: "a"))
        kill(first, SIGKILL)
        var second: Int32?
        // Bounded by wall time, not by a count of sleeps: a loaded test run may wake us late.
        let deadline = ContinuousClock.now + .seconds(30)
        // Look again after every wait, before judging the deadline: a starved task may wake late.
        while true {
            if let pid = supervisor.processIdentifier(of: "a"), pid != first { second = pid; break }
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(second != nil, "the killed child was not restarted")
        #expect(supervisor.restartCount["a"] == 1)
        let b = try #require(supervisor.processIdentifier(of: "b"))
        supervisor.stop()
        #expect(kill(second ?? first, 0) != 0, "a is still running after stop")
        #expect(kill(b, 0) != 0, "b is still running after stop")
    }

    /// A child holds nothing of the supervisor's but standard input, output and error: an `erp soak`'s
    /// services held its samples.txt and runner.log, which Foundation opened without O_CLOEXEC.
    @Test func aChildInheritsNoDescriptorOfTheSupervisor() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-inherited-\(UInt64.random(in: 0...UInt64.max))").path
        let held = open(path, O_WRONLY | O_CREAT, 0o644)   // no O_CLOEXEC, as Foundation's FileHandle
        try #require(held >= 3)
        defer { close(held); unlink(path) }
        let supervisor = Supervisor(children: [.init(name: "a", executable: "/bin/sleep", arguments: ["3600"])])
        supervisor.log = { _ in }
        supervisor.stopGracePeriod = .milliseconds(500)
        try supervisor.start()
        defer { supervisor.stop() }
        let pid = try #require(supervisor.processIdentifier(of: "a"))
        // Until exec, the child is the supervisor's copy. Just after exec, /bin/sleep's loader holds
        // the libraries it is mapping (a CI run once saw libc.so.6 as descriptor 3); once it sleeps,
        // it holds nothing of its own. So look until only 0, 1 and 2 are left, for a few seconds:
        // what the loader opens goes away, and what the child inherited stays.
        var fds: [String] = []
        var ranSleepAt: ContinuousClock.Instant?
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if ProcStat.readFile("/proc/\(pid)/cmdline").hasPrefix("/bin/sleep") {
                let now = ContinuousClock.now
                if ranSleepAt == nil { ranSleepAt = now }
                fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
                if fds.compactMap(Int.init).allSatisfy({ $0 <= 2 }) || now - ranSleepAt! > .seconds(3) { break }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
        #expect(!targets.isEmpty, "the child never ran /bin/sleep")
        #expect(!targets.contains(path), "the child holds the supervisor's \(path): \(targets)")
        let numbers = fds.compactMap(Int.init).sorted()
        #expect(numbers.allSatisfy { $0 <= 2 }, "descriptors beyond standard input, output and error: \(numbers) \(targets)")
    }

    /// A child that keeps dying is restarted ever more slowly, never given up on: a request that
    /// crashes a service every time must not take the service down for good.
    @Test func aChildThatKeepsDyingBacksOffButIsNeverGivenUpOn() async throws {
        let supervisor = Supervisor(children: [.init(name: "crashy", executable: "/bin/false", arguments: [])])
        let lines = LineLog()
        supervisor.log = { lines.add($0) }
        supervisor.restartPolicy.delay = .milliseconds(1)
        supervisor.restartPolicy.countMax = 3
        supervisor.restartPolicy.backoffMax = .milliseconds(40)
        try supervisor.start()
        let deadline = ContinuousClock.now + .seconds(30)
        while (supervisor.restartCount["crashy"] ?? 0) < 8 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect((supervisor.restartCount["crashy"] ?? 0) >= 8, "restarted past restartPolicy.countMax")
        #expect(lines.contains("restarting in 2ms (crash loop)"), "the first restart past the count waits twice the delay")
        #expect(lines.contains("restarting in 40ms (crash loop)"), "the wait is capped")
        #expect(!lines.contains("not restarting"))
        supervisor.stop()
    }
}

@Suite struct SupervisorWrapperTests {
    /// ERP_WRAP's entries are parsed, and a name that is not a child or an entry without a command
    /// is refused.
    @Test func wrappersAreParsedAndChecked() throws {
        let w = try Supervisor.wrappers(from: "order=heaptrack -o /tmp/o ; event-bus=perf record -g", children: ["order", "event-bus"])
        #expect(w == ["order": ["heaptrack", "-o", "/tmp/o"], "event-bus": ["perf", "record", "-g"]])
        #expect(try Supervisor.wrappers(from: nil, children: ["order"]).isEmpty)
        #expect(try Supervisor.wrappers(from: " ", children: ["order"]).isEmpty)
        #expect(throws: SupervisorError.self) { try Supervisor.wrappers(from: "ordre=heaptrack", children: ["order"]) }
        #expect(throws: SupervisorError.self) { try Supervisor.wrappers(from: "order=", children: ["order"]) }
        #expect(throws: SupervisorError.self) { try Supervisor.wrappers(from: "heaptrack", children: ["order"]) }
    }

    /// A wrapped child runs as the wrapper's words (looked up on PATH) followed by its own command.
    @Test func aWrappedChildRunsUnderItsTool() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("wrapped-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let supervisor = Supervisor(children: [
            .init(name: "a", executable: "/bin/sh", arguments: ["-c", "echo \"$WRAPPED\" > \(out); exec sleep 3600"]),
        ])
        supervisor.log = { _ in }
        supervisor.stopGracePeriod = .milliseconds(500)
        supervisor.wrappers = ["a": ["env", "WRAPPED=yes"]]
        try supervisor.start()
        defer { supervisor.stop() }
        let deadline = ContinuousClock.now + .seconds(30)
        var text = ""
        while ContinuousClock.now < deadline {
            text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if text.hasSuffix("\n") { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(text == "yes\n")
    }
}

@Suite struct SupervisorProcessGroupTests {
    /// A wrapper that runs the service as its child (as heaptrack does) and does not pass signals
    /// on: stopping and crashing reach the service too, and `stop` returns only once it is gone
    /// (a service still shutting down under its dead wrapper held its database while the run's
    /// invariant check tried to open it).
    @Test func stopAndCrashReachTheServiceUnderItsWrapper() async throws {
        let supervisor = Supervisor(children: [.init(name: "a", executable: "/bin/sleep", arguments: ["3600"])])
        supervisor.log = { _ in }
        supervisor.stopGracePeriod = .seconds(5)
        // Not `exec`: the shell forks sleep and waits for it.
        supervisor.wrappers = ["a": ["/bin/sh", "-c", "\"$@\"; true", "wrap"]]
        func serviceUnderWrapper() async throws -> (wrapper: pid_t, service: pid_t) {
            let wrapper = try #require(supervisor.processIdentifier(of: "a"))
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if let service = ProcStat.liveChildren(of: wrapper).first { return (wrapper, service) }
                try await Task.sleep(for: .milliseconds(10))
            }
            struct NoServiceUnderWrapper: Error {}
            throw NoServiceUnderWrapper()
        }
        try supervisor.start()
        let first = try await serviceUnderWrapper()
        #expect(supervisor.send(SIGSTOP, to: "a"))
        // A signal is delivered when the process next runs: look until it shows stopped.
        let state = { ProcStat.fields(of: first.service)?.first }
        #expect(await eventually(within: .seconds(10)) { state() == "T" }, "SIGSTOP did not reach the service: state \(state() ?? "gone")")
        #expect(supervisor.send(SIGCONT, to: "a"))
        #expect(supervisor.crash("a"))
        #expect(!ProcStat.isRunning(first.service), "the service outlived the crash of its wrapper")
        try supervisor.restart("a")
        let second = try await serviceUnderWrapper()
        supervisor.stop()
        #expect(!ProcStat.isRunning(second.wrapper) && !ProcStat.isRunning(second.service), "the service outlived stop()")
    }
}

final class LineLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.withLock { lines.append(s) } }
    func contains(_ s: String) -> Bool { lock.withLock { lines.contains { $0.contains(s) } } }
}

@Suite struct SupervisorCrashTests {
    /// A scripted crash stays down (no automatic restart) until `restart`; pause and resume reach
    /// the child.
    @Test func aCrashedChildStaysDownUntilRestarted() async throws {
        let supervisor = Supervisor(children: [.init(name: "a", executable: "/bin/sleep", arguments: ["3600"])])
        supervisor.log = { _ in }
        supervisor.restartPolicy.delay = .milliseconds(10)
        supervisor.stopGracePeriod = .milliseconds(500)
        try supervisor.start()
        let first = try #require(supervisor.processIdentifier(of: "a"))
        #expect(supervisor.send(SIGSTOP, to: "a"))
        #expect(supervisor.send(SIGCONT, to: "a"))
        #expect(supervisor.crash("a"))
        #expect(kill(first, 0) != 0, "the crashed child is still alive")
        try await Task.sleep(for: .milliseconds(300))
        #expect(supervisor.processIdentifier(of: "a") == nil, "a crashed child came back without restart")
        try supervisor.restart("a")
        let second = try #require(supervisor.processIdentifier(of: "a"))
        #expect(second != first)
        #expect(supervisor.startCount["a"] == 2)
        supervisor.stop()
        #expect(kill(second, 0) != 0)
    }
}
