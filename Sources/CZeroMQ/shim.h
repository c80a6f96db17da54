// CZeroMQ: the system libzmq (4.3.x, Debian's libzmq3-dev) seen from Swift.
// Only ERPZeroMQ imports this module; everything above it speaks Swift.
#ifndef ERP_CZEROMQ_SHIM_H
#define ERP_CZEROMQ_SHIM_H

#include <zmq.h>

#endif
