import Foundation

/// SIGINT and SIGTERM handled by `handler` (on a dispatch queue) instead of their default action,
/// so that a supervising process can stop its children first; `cancel()` gives the signals back
/// their default action.
public struct TerminationSignals {
    private let sources: [any DispatchSourceSignal]

    public init(_ handler: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        sources = [SIGINT, SIGTERM].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    public func cancel() {
        sources.forEach { $0.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// A process that must not outlive the one that started it (a service of `erp up`, a seed of
/// `erp explore`): once it is re-parented (its parent died, even by SIGKILL, which leaves no
/// chance to stop children), it sends itself SIGTERM and stops as on Ctrl-C. A plain thread: it
/// must keep watching however busy the process is. (`PR_SET_PDEATHSIG` was not used: it fires
/// when the parent's spawning *thread* exits, and a concurrency pool's threads come and go.)
public enum ParentWatch {
    /// The parent's process id, when the process that started this one gives it (`erp explore`
    /// does): a parent killed before this process got to `start()` was taken for the reaper that
    /// adopted it, and watched forever (the test of a killed exploration, on a busy CI machine).
    public static let parentVariable = "ERP_PARENT_PID"

    /// The environment for a child that will watch this process: this one's plus its id.
    public static func environmentForChild() -> [String: String] {
        ProcessInfo.processInfo.environment.merging([parentVariable: String(getpid())]) { $1 }
    }

    public static func start() {
        let given = ProcessInfo.processInfo.environment[parentVariable].flatMap { pid_t($0) }
        // Not for this process's own children, whose parent it is.
        unsetenv(parentVariable)
        let parent = given ?? getppid()
        let watcher = Thread {
            while getppid() == parent { usleep(200_000) }
            kill(getpid(), SIGTERM)
        }
        watcher.name = "watch-parent"
        watcher.start()
    }
}
