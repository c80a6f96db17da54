import CSQLiteTuning

/// Process-wide SQLite settings, applied once before the process's first connection.
///
/// SQLite keeps memory statistics by default (`SQLITE_CONFIG_MEMSTATUS`): every allocation and
/// free takes a process-wide mutex to count bytes. Nothing here reads those statistics or sets a
/// heap limit, and the mutex was 2.5 % of a simulated happy-path run (`sqlite3Malloc` and
/// `sqlite3_free` under `pthread_mutex_lock`/`unlock`). A process that used SQLite before this
/// runs keeps the statistics; nothing else changes.
public enum SQLiteTuning {
    /// Whether the settings took effect (SQLite had not yet started in this process).
    public static let applied: Bool = erp_sqlite3_config_memstatus(0) == 0

    @inline(__always) static func applyOnce() { _ = applied }
}
