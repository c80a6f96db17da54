// CMalloc: glibc's <malloc.h> seen from Swift (malloc_trim and mallinfo2, which Glibc's module leaves out).
// The production host imports it (and its control report says what mallinfo2 says). Also the one
// stdio call Swift 6 cannot make itself: C's `stdout` is a global variable it refuses to touch; and
// the one spawn action the supervisor needs that Glibc's module leaves out.
#ifndef ERP_CMALLOC_SHIM_H
#define ERP_CMALLOC_SHIM_H

#include <malloc.h>
#include <stdio.h>

/// Makes standard output line-buffered, also when it is a file or a pipe.
static inline void erp_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34 and later), which <spawn.h> declares
/// only under _GNU_SOURCE, and Glibc's module is built without it: a spawned child closes every
/// descriptor from `lowest` up before it runs.
#include <spawn.h>
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int lowest);
static inline int erp_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

#endif
