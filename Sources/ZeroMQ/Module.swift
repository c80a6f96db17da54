// ZeroMQ is a thin, thread-confined wrapper over the system libzmq (4.3.x, through `CZeroMQ`).
// What it owns: the context, sockets confined to I/O threads (`IOThread`, a thread of its own or
// hosted on a `SerialTaskExecutor`, the executor a node's tasks run on), deliberate socket
// defaults, bounded inboxes, CURVE keys and the ZAP authenticator, typed and counted errors.
//
// It knows nothing of RPC, services or the testbed: besides CZeroMQ it imports only
// swift-collections' DequeModule, Foundation, Synchronization and the C library, nothing of ours.
// `ERPZeroMQ` builds the real backend's RPC on it; docs/zeromq-wrapper.md says why each default
// is what it is.
