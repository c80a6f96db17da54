// CMalloc: glibc's <malloc.h> seen from Swift (malloc_trim, which Glibc's module leaves out).
// Only the production host imports it.
#ifndef ERP_CMALLOC_SHIM_H
#define ERP_CMALLOC_SHIM_H

#include <malloc.h>

#endif
