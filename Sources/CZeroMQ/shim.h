// CZeroMQ: the system libzmq (4.3.x, Debian's libzmq3-dev) seen from Swift.
// The ZeroMQ module imports this (and ERPBenchmarks, for its raw-libzmq yardstick); everything
// else speaks Swift.
#ifndef ERP_CZEROMQ_SHIM_H
#define ERP_CZEROMQ_SHIM_H

#include <zmq.h>
#include <sys/prctl.h>

/// Names the calling thread (what `top -H`, `perf` and /proc/PID/task/TID/comm show); the kernel
/// keeps the first 15 bytes. prctl is variadic, so Swift cannot call it directly.
static inline void erp_name_current_thread(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

#endif
