// CMalloc: glibc's <malloc.h> seen from Swift (malloc_trim and mallinfo2, which Glibc's module leaves out).
// The production host imports it (and its control report says what mallinfo2 says). Also the one
// stdio call Swift 6 cannot make itself: C's `stdout` is a global variable it refuses to touch.
#ifndef ERP_CMALLOC_SHIM_H
#define ERP_CMALLOC_SHIM_H

#include <malloc.h>
#include <stdio.h>

/// Makes standard output line-buffered, also when it is a file or a pipe.
static inline void erp_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

#endif
