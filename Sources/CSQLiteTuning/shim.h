// CSQLiteTuning: the process-wide SQLite settings Swift cannot reach (sqlite3_config is variadic).
#ifndef ERP_CSQLITETUNING_SHIM_H
#define ERP_CSQLITETUNING_SHIM_H

#include <sqlite3.h>

/// Turns SQLite's memory statistics on or off. Must run before SQLite initializes (its first
/// connection); returns SQLITE_MISUSE after that and changes nothing.
static inline int erp_sqlite3_config_memstatus(int on) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, on);
}

/// The SQLite library's version text, e.g. "3.40.1".
static inline const char *erp_sqlite3_libversion(void) {
    return sqlite3_libversion();
}

#endif
