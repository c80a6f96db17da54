import CSQLiteTuning

/// Process-wide SQLite settings, which must be made before the process's first connection.
///
/// SQLite keeps memory statistics by default (`SQLITE_CONFIG_MEMSTATUS`): every allocation and
/// free takes a process-wide mutex to count bytes. That mutex was 2.5 % of a simulated happy-path
/// run (`sqlite3Malloc` and `sqlite3_free` under `pthread_mutex_lock`/`unlock`). A process that
/// only simulates does not read them, and switches them off. A service process keeps them: its
/// control report tells SQLite's share of the heap from its own with them (`HeapUsage`, which
/// `erp soak` judges leaks by), and so does the test suite's process, which checks that report.
public enum SQLiteTuning {
    /// Switches SQLite's memory statistics off for this process; true when they are off (SQLite
    /// had not started in this process when this was first called), false when SQLite refused
    /// (it had started). Only the first call tries.
    @discardableResult
    public static func disableMemoryStatistics() -> Bool { disabled }

    private static let disabled: Bool = erp_sqlite3_config_memstatus(0) == 0

    /// The SQLite library this process runs on (`3.40.1`): the system's, loaded at run time. A
    /// simulated trace depends on it where SQLite's own writes are counted (a power cut inside
    /// its Nth write) or its error text is quoted (a disk fault), so a run records it.
    public static var libraryVersion: String { String(cString: erp_sqlite3_libversion()) }
}
