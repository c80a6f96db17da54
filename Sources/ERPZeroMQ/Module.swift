// ERPZeroMQ is the real backend: typed RPC over the `ZeroMQ` wrapper. It owns `ZeroMQTransport`
// (the one-frame `erp/2` messages of `WireFormat`: a binary header, a JSON body written by ERPWire's `WireJSON`; the
// address book, the sender-side `FaultFilter`), `ZeroMQRuntime` (a node's runtime on one
// `SerialTaskExecutor`) and `SystemClock`. Sibling of ERPSimulation: the two never import each other.
//
// The wrapper's types are part of this module's API (a transport is built from a `ZMQContext`, a
// `SerialTaskExecutor` and a `CurveKeyPair`), so importing ERPZeroMQ brings them along.
@_exported import ZeroMQ
