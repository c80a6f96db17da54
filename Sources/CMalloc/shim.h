// CMalloc: glibc's <malloc.h> seen from Swift (malloc_trim and mallinfo2, which Glibc's module leaves out).
// The production host imports it (and its control report says what mallinfo2 says).
#ifndef ERP_CMALLOC_SHIM_H
#define ERP_CMALLOC_SHIM_H

#include <malloc.h>

#endif
