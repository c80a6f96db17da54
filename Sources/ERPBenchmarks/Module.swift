// ERPBenchmarks holds the benchmarks behind `erp bench`: the simulator's RPC mesh (`MeshBenchmark`,
// the workload of shared/bench/c_mesh.c through SimWorld and SimTransport) and the ZeroMQ
// transport against raw libzmq (`ZeroMQTransportBenchmark`, the shapes of shared/bench/zmq_raw.c).
// They print figures and decide nothing; docs/benchmarks.md records what they measured. Both
// backends are imported here, so that neither carries measuring code.
