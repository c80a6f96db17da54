import DequeModule
import Foundation

/// A `TaskExecutor` backed by one dedicated thread: a locked job queue and a condition variable,
/// jobs run in FIFO order with `runSynchronously(on:)`, plus a timer queue served by the same thread.
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
    // @unchecked Sendable: every mutable field is reached only while `condition` is locked.
    public let name: String
    private let condition = NSCondition()
    private var jobs = Deque<UnownedJob>()
    private var timers: [Timer] = []            // binary min-heap on (deadline, sequence)
    /// Timers scheduled and neither fired nor cancelled (a cancelled one leaves the heap when due).
    private var armedTimers = Set<UInt64>()
    private var timerSequence: UInt64 = 0
    private var stopping = false
    private var threadId: pthread_t?
    private var counters = Counters()
    private let exited = DispatchSemaphore(value: 0)

    /// What the executor has done, for reports and tests.
    public struct Counters: Sendable, Hashable {
        public var jobsRun = 0
        public var timersFired = 0
        /// Jobs enqueued after `shutdown()`: their tasks never run again, as in a crashed process.
        public var jobsDropped = 0
        public var jobsQueuedMax = 0
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
        let thread = Thread { [self] in self.runLoop() }
        thread.name = name
        thread.start()
    }

    // MARK: TaskExecutor

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        defer { condition.unlock() }
        if stopping { counters.jobsDropped += 1; return }
        jobs.append(job)
        if jobs.count > counters.jobsQueuedMax { counters.jobsQueuedMax = jobs.count }
        condition.signal()
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
        condition.lock()
        defer { condition.unlock() }
        timerSequence &+= 1
        let token = TimerToken(sequence: timerSequence)
        if stopping { return token }
        armedTimers.insert(timerSequence)
        push(Timer(deadline: deadline, sequence: timerSequence, action: action))
        condition.signal()
        return token
    }

    /// Cancels a timer that has not fired yet; harmless otherwise.
    public func cancel(_ token: TimerToken) {
        condition.lock()
        defer { condition.unlock() }
        armedTimers.remove(token.sequence)
    }

    /// Suspends the calling task for `duration` of wall time; the wake-up comes from this
    /// executor's thread. Returns early, without error, if the executor shuts down.
    public func sleep(for duration: Duration) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            schedule(after: duration) { continuation.resume() }
        }
    }

    // MARK: Lifecycle

    /// Executors that were shut down. A task does not own the executor it prefers, so a task
    /// left suspended by a shutdown (a continuation the I/O thread resumes later) may still enqueue
    /// here: the object must outlive every such task, and it is small, so it is kept for the life
    /// of the process.
    private static let retired = Locked<[SerialTaskExecutor]>([])

    /// Stops the thread after the job it is running. Queued and later jobs are dropped (their
    /// tasks never resume: what a crash does to a process), pending timers never fire. Returns
    /// when the thread has exited, unless called from that thread itself.
    public func shutdown() {
        condition.lock()
        let wasStopping = stopping
        stopping = true
        counters.jobsDropped += jobs.count
        jobs.removeAll()
        timers.removeAll()
        armedTimers.removeAll()
        let onOwnThread = threadId.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        condition.signal()
        condition.unlock()
        if wasStopping { return }
        Self.retired.withLock { $0.append(self) }
        if !onOwnThread { exited.wait() }
    }

    public var isStopped: Bool { condition.lock(); defer { condition.unlock() }; return stopping }
    public var counterSnapshot: Counters { condition.lock(); defer { condition.unlock() }; return counters }

    /// True on this executor's thread.
    public var isCurrent: Bool {
        condition.lock(); defer { condition.unlock() }
        return threadId.map { pthread_equal($0, pthread_self()) != 0 } ?? false
    }

    // MARK: The thread

    private func runLoop() {
        let executor = asUnownedTaskExecutor()
        condition.lock()
        threadId = pthread_self()
        condition.unlock()
        var batch: [UnownedJob] = []
        var due: [@Sendable () -> Void] = []
        while true {
            condition.lock()
            while true {
                if stopping { break }
                collectDueTimers(into: &due)
                if !jobs.isEmpty || !due.isEmpty { break }
                if let next = timers.first {
                    let wait = ContinuousClock.now.duration(to: next.deadline)
                    _ = condition.wait(until: Date(timeIntervalSinceNow: max(0, wait.seconds)))
                } else {
                    condition.wait()
                }
            }
            if stopping {
                condition.unlock()
                exited.signal()
                return
            }
            batch.append(contentsOf: jobs)
            jobs.removeAll(keepingCapacity: true)
            counters.jobsRun += batch.count
            counters.timersFired += due.count
            condition.unlock()
            for action in due { action() }
            due.removeAll(keepingCapacity: true)
            for job in batch { job.runSynchronously(on: executor) }
            batch.removeAll(keepingCapacity: true)
        }
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
