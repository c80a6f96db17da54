import CZeroMQ
import DequeModule
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `TaskExecutor` backed by one dedicated thread: a locked job queue, jobs run in FIFO order with
/// `runSynchronously(on:)`, a timer queue served by the same thread, and optionally the sockets of
/// I/O threads hosted on it (`IOThread.start(context:on:)`): the thread sleeps in `poll(2)`
/// over those sockets' descriptors and a wake-up pipe, so a task of the node sends straight into its sockets
/// and received messages are handled on the thread that will run their continuations.
///
/// A production node starts every task with `Task(executorPreference: executor)`, so its child
/// tasks, hops and resumed continuations all come back to this one thread, and service classes
/// (`@unchecked Sendable`, confined to their node) stay single-threaded exactly as in simulation.
///
/// Twin of the simulator's `SimWorld` executor. Differences: jobs run in arrival order (no seeded
/// shuffling), time is wall time (timers wait on the condition variable with a timeout), and jobs
/// may be enqueued from any thread (the I/O thread resumes continuations here).
///
/// Why it has its own timers: `Task.sleep` wakes a task through the global cooperative pool, which
/// a blocked caller (a synchronous test waiting on a semaphore, two cores) can starve; a node whose
/// every wake-up stays on its own thread keeps running whatever the pool does.
public final class SerialTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: every mutable field is reached only while `lock` is held, except the
    // wake-up pipe's descriptors (immutable; written only under the lock, read only by the thread).
    public let name: String
    private let lock = NSLock()
    private var jobs = Deque<UnownedJob>()
    private var timers: [Timer] = []            // binary min-heap on (deadline, sequence)
    /// Timers scheduled and neither fired nor cancelled (a cancelled one leaves the heap when due).
    private var armedTimers = Set<UInt64>()
    private var timerSequence: UInt64 = 0
    private var stopping = false
    private var threadId: pthread_t?
    private var counters = Counters()
    private let exited = DispatchSemaphore(value: 0)
    /// The thread decided to block in `poll(2)` (nothing to run): a producer must wake it.
    private var sleeping = false
    /// A byte is in the wake-up pipe and the thread has not drained it yet: wake-ups coalesce.
    private var wakePending = false
    /// A hosted I/O thread has commands waiting in its mailbox.
    private var ioCommandsPending = false
    /// I/O threads to host, waiting for this thread to build their loops.
    private var attaching: [IOThreadCore] = []
    /// The wake-up pipe: producers write one byte when the thread sleeps, the thread polls the
    /// reading end together with its hosted sockets.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The longest one `poll(2)` waits: a safety net, every producer wakes the thread.
    private static let pollTimeoutMaxMilliseconds = 1_000
    /// While jobs keep the thread busy, how often it still looks at its sockets' descriptors.
    private static let busyPollInterval = Duration.microseconds(50)

    /// What the executor has done, for reports and tests.
    public struct Counters: Sendable, Hashable {
        public var jobsRun = 0
        public var timersFired = 0
        /// Jobs enqueued after `shutdown()`: their tasks never run again, as in a crashed process.
        public var jobsDropped = 0
        public var jobsQueuedMax = 0
        /// Bytes written to the wake-up pipe: producers that found the thread asleep.
        public var wakeUps = 0
    }

    struct Timer {
        var deadline: ContinuousClock.Instant
        var sequence: UInt64
        var action: @Sendable () -> Void
        func precedes(_ other: Timer) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
        }
    }

    /// An armed timer; pass it to `cancel(_:)`.
    public struct TimerToken: Sendable, Hashable { let sequence: UInt64 }

    /// Starts the executor's thread at once.
    public init(name: String) {
        self.name = name
        var fds: [Int32] = [-1, -1]
        let made = pipe(&fds)
        precondition(made == 0, "pipe() failed for executor \(name): errno \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        let thread = Thread { [self] in self.runLoop() }
        thread.name = name
        thread.start()
    }

    // MARK: TaskExecutor

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.lock()
        defer { lock.unlock() }
        if stopping { counters.jobsDropped += 1; return }
        jobs.append(job)
        if jobs.count > counters.jobsQueuedMax { counters.jobsQueuedMax = jobs.count }
        wakeLocked()
    }

    /// Writes one byte on the wake-up pipe if the thread sleeps and no byte is on its way yet. A
    /// producer on the executor's own thread never finds it asleep, so costs no system call. Lock held.
    private func wakeLocked() {
        guard sleeping && !wakePending && !stopping else { return }
        wakePending = true
        counters.wakeUps += 1
        var byte: UInt8 = 1
        // Cannot fill the pipe: at most one byte is in it (wakePending).
        _ = write(wakeWrite, &byte, 1)
    }

    // MARK: Timers

    /// Runs `action` on this executor's thread after `delay` (at once if it is not positive).
    @discardableResult
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> TimerToken {
        schedule(at: ContinuousClock.now + max(.zero, delay), action)
    }

    /// Runs `action` on this executor's thread at `deadline` (at once if it has passed).
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> TimerToken {
        lock.lock()
        defer { lock.unlock() }
        timerSequence &+= 1
        let token = TimerToken(sequence: timerSequence)
        if stopping { return token }
        armedTimers.insert(timerSequence)
        push(Timer(deadline: deadline, sequence: timerSequence, action: action))
        wakeLocked()
        return token
    }

    /// Cancels a timer that has not fired yet; harmless otherwise.
    public func cancel(_ token: TimerToken) {
        lock.lock()
        defer { lock.unlock() }
        armedTimers.remove(token.sequence)
    }

    /// Suspends the calling task for `duration` of wall time; the wake-up comes from this
    /// executor's thread. Returns early, without error, if the executor shuts down.
    public func sleep(for duration: Duration) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            schedule(after: duration) { continuation.resume() }
        }
    }

    // MARK: Hosted I/O thread

    /// Makes `core` an I/O thread that runs on this executor's thread (`IOThread.start(context:on:)`).
    /// The thread builds its loop before it runs the next job; commands queued meanwhile wait.
    func host(_ core: IOThreadCore) throws {
        lock.lock()
        defer { lock.unlock() }
        if stopping { throw ZeroMQError(.ioThreadStopped, message: "executor \(name) is stopped") }
        attaching.append(core)
        ioCommandsPending = true
        wakeLocked()
    }

    /// Called by a hosted I/O thread's mailbox when commands arrive (from any thread).
    func ioCommandsArrived() {
        lock.lock()
        defer { lock.unlock() }
        ioCommandsPending = true
        wakeLocked()
    }

    // MARK: Lifecycle

    /// Executors that were shut down. A task does not own the executor it prefers, so a task
    /// left suspended by a shutdown (a continuation the I/O thread resumes later) may still enqueue
    /// here: the object must outlive every such task, and it is small, so it is kept for the life
    /// of the process.
    private static let retired = Locked<[SerialTaskExecutor]>([])

    /// Stops the thread after the job it is running. Queued and later jobs are dropped (their
    /// tasks never resume: what a crash does to a process), pending timers never fire. Hosted
    /// I/O threads are stopped too: its sockets are closed before the thread exits. Returns when the
    /// thread has exited, unless called from that thread itself.
    public func shutdown() {
        lock.lock()
        let wasStopping = stopping
        counters.jobsDropped += jobs.count
        jobs.removeAll()
        timers.removeAll()
        armedTimers.removeAll()
        let onOwnThread = threadId.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        if !wasStopping {
            // Wake it (ignoring `sleeping`: it may be about to poll) before refusing later wake-ups.
            if !wakePending {
                wakePending = true
                var byte: UInt8 = 1
                _ = write(wakeWrite, &byte, 1)
            }
        }
        stopping = true
        lock.unlock()
        if wasStopping { return }
        Self.retired.withLock { $0.append(self) }
        if !onOwnThread { exited.wait() }
    }

    public var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopping }
    public var counterSnapshot: Counters { lock.lock(); defer { lock.unlock() }; return counters }

    /// True on this executor's thread.
    public var isCurrent: Bool {
        lock.lock(); defer { lock.unlock() }
        return threadId.map { pthread_equal($0, pthread_self()) != 0 } ?? false
    }

    // MARK: The thread

    /// One thread for the node's jobs, timers and (when hosted) sockets. Each turn: read the due
    /// sockets (handlers run here; see `IOLoop.readDueSockets`); decide whether anything is
    /// runnable (then look at the descriptors without waiting, at most every `busyPollInterval`)
    /// or sleep in `poll(2)` until the next timer, a wake-up byte or a signalled socket; run the
    /// hosted thread's commands, the due timers and the queued jobs in arrival order.
    private func runLoop() {
        let executor = asUnownedTaskExecutor()
        // The kernel's name for the thread (what `top -H`, `perf` and `/proc/PID/task` show): at
        // most 15 bytes (a service's name, "inventory", fits).
        erp_name_current_thread(name)
        lock.lock()
        threadId = pthread_self()
        lock.unlock()
        var batch: [UnownedJob] = []
        var due: [@Sendable () -> Void] = []
        // The hosted loops, and one poll(2) array: the wake-up pipe, then each loop's descriptors
        // (`owners[i]` names the loop and socket of `descriptors[i + 1]`).
        var loops: [IOLoop] = []
        var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        var owners: [(loop: Int, target: IOLoop.PollTarget)] = []
        var descriptorsStale = false
        func detach(_ index: Int, _ reason: ZeroMQError) {
            loops.remove(at: index).shutdown(reason)
            descriptorsStale = true
        }
        var lastPoll = ContinuousClock.now
        var wokeForMessages = false
        while true {
            // Read what is due first (readable at the last poll, or used since): messages go to
            // their handlers here, on this thread, and the jobs they enqueue run this turn. A loop
            // whose context is terminating is shut down (its sockets closed); the executor goes on.
            // After a sleep ended by a socket, one message each: its handler and jobs run at
            // once, and the read that finds the socket empty waits for the next turn.
            let limit = wokeForMessages ? 1 : IOLoop.receiveBatchMax
            wokeForMessages = false
            for index in loops.indices.reversed() {
                if let error = loops[index].readDueSockets(limit: limit) { detach(index, error) }
            }
            // Sockets left to read (more than a batch waiting) keep the thread from sleeping, like
            // queued jobs.
            let readsDue = loops.contains(where: \.hasDueReads)
            lock.lock()
            if stopping { lock.unlock(); break }
            let attach = attaching
            attaching.removeAll()
            var timeout: Int32 = 0
            if jobs.isEmpty && !ioCommandsPending && attach.isEmpty && !readsDue {
                let now = ContinuousClock.now
                if let next = timers.first {
                    if next.deadline > now {
                        // Rounded up: waking early would only spin until the deadline.
                        let wait = now.duration(to: next.deadline).millisecondsInt32RoundedUp
                        timeout = max(1, min(Int32(Self.pollTimeoutMaxMilliseconds), wait))
                    }
                } else {
                    timeout = Int32(Self.pollTimeoutMaxMilliseconds)
                }
                if timeout > 0 { sleeping = true }
            }
            lock.unlock()

            for core in attach {
                loops.append(IOLoop(core: core, wakeReceiver: nil))
                descriptorsStale = true
            }
            if descriptorsStale || loops.contains(where: \.descriptorsChanged) {
                descriptors.removeSubrange(1...)
                owners.removeAll(keepingCapacity: true)
                for (index, loop) in loops.enumerated() {
                    for item in loop.hostedDescriptors() {
                        descriptors.append(pollfd(fd: item.fd, events: Int16(POLLIN), revents: 0))
                        owners.append((index, item.target))
                    }
                }
                descriptorsStale = false
            }
            var woken = false
            // One poll(2) over the wake-up pipe and the sockets' ZMQ_FDs: a sleep when there is
            // nothing to do, a look without waiting otherwise (skipped with no socket to look at;
            // a byte left in the pipe is drained at the next sleep).
            // While busy, look at most every `busyPollInterval`: each look is a system call, and
            // the jobs of a turn are short.
            let now = ContinuousClock.now
            if timeout > 0 || (descriptors.count > 1 && now - lastPoll >= Self.busyPollInterval) {
                let readyCount = poll(&descriptors, nfds_t(descriptors.count), timeout)
                lastPoll = timeout > 0 ? ContinuousClock.now : now
                if readyCount > 0 {
                    woken = descriptors[0].revents != 0
                    for index in 1..<descriptors.count where descriptors[index].revents != 0 {
                        let owner = owners[index - 1]
                        loops[owner.loop].descriptorReadable(owner.target)
                        if timeout > 0 { wokeForMessages = true }
                    }
                }
                // readyCount < 0: EINTR, or EINVAL/ENOMEM, which a later turn retries.
            }
            if woken { drainWakePipe() }

            lock.lock()
            sleeping = false
            if woken { wakePending = false }
            // A loop attached this turn runs its commands in any case: the flag may have been
            // consumed by an earlier turn, before the loop existed.
            let runCommands = ioCommandsPending || !attach.isEmpty
            ioCommandsPending = false
            collectDueTimers(into: &due)
            batch.append(contentsOf: jobs)
            jobs.removeAll(keepingCapacity: true)
            counters.jobsRun += batch.count
            counters.timersFired += due.count
            lock.unlock()

            if runCommands {
                for loop in loops { loop.runCommands() }
                for index in loops.indices.reversed() where !loops[index].isRunning {
                    detach(index, ZeroMQError(.ioThreadStopped, message: "I/O thread \(loops[index].name) was stopped"))
                }
            }
            for action in due { action() }
            due.removeAll(keepingCapacity: true)
            for job in batch { job.runSynchronously(on: executor) }
            batch.removeAll(keepingCapacity: true)
        }
        // Stopping: close the hosted sockets (and refuse their later commands) before saying so.
        let reason = ZeroMQError(.ioThreadStopped, message: "executor \(name) was shut down")
        for loop in loops { loop.shutdown(reason) }
        let never = lock.withLock {
            let never = attaching
            attaching.removeAll()
            return never
        }
        for core in never {
            for command in core.close(because: reason) { command.fail(reason) }
        }
        close(wakeRead)
        close(wakeWrite)
        exited.signal()
    }

    private func drainWakePipe() {
        var buffer = (UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Moves every timer whose deadline has passed into `due`, in deadline order. Lock held.
    private func collectDueTimers(into due: inout [@Sendable () -> Void]) {
        let now = ContinuousClock.now
        while let first = timers.first, first.deadline <= now {
            let timer = popMin()
            if armedTimers.remove(timer.sequence) != nil { due.append(timer.action) }
        }
    }

    private func push(_ timer: Timer) {
        timers.append(timer)
        var child = timers.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard timers[child].precedes(timers[parent]) else { break }
            timers.swapAt(child, parent)
            child = parent
        }
    }

    private func popMin() -> Timer {
        let top = timers[0]
        let last = timers.removeLast()
        if !timers.isEmpty {
            timers[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < timers.count && timers[left].precedes(timers[smallest]) { smallest = left }
                if right < timers.count && timers[right].precedes(timers[smallest]) { smallest = right }
                if smallest == parent { break }
                timers.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}

extension SerialTaskExecutor {
    /// Runs `body` as a task on this executor (where a node's state lives) and waits for its
    /// result, from any thread. If the executor has shut down, the task never runs and this
    /// never returns, like a call into a process that is gone.
    public func run<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            Task(executorPreference: self) { c.resume(returning: await body()) }
        }
    }

    /// The same for a body that throws.
    public func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            Task(executorPreference: self) {
                do { c.resume(returning: try await body()) } catch { c.resume(throwing: error) }
            }
        }
    }
}

/// Gives the calling thread the kernel name `name` (its first 15 bytes): what `top -H`, `perf` and
/// `/proc/PID/task/TID/comm` show. For threads the executor does not start itself.
public func nameCurrentThread(_ name: String) {
    erp_name_current_thread(name)
}
