// swift-tools-version: 6.1
// The dependency direction is the architecture. Targets are listed floor by floor; a target
// imports only targets on its own floor or below, never one above (package dependencies such as
// GRDB or swift-log are left out here).
//
// 1. Domain
//   ERPCore        domain vocabulary: ids, money, time, RPC contracts, events, Clock and
//                  RandomSource protocols, JSONCoding for persisted JSON. No I/O; imports nothing.
//   ERPWire        WireJSON, the one JSON writer of RPC headers and bodies on a real wire.
//                  Imports nothing.
// 2. Storage, transport, resilience, reports
//   ERPStorage     per-service SQLite through GRDB: migrations, outbox, inbox, idempotency store;
//                  the simulator's in-memory disks (a VFS under SQLite). Imports ERPCore.
//   ERPTransport   the Transport and Runtime protocols every service sees, the handler table,
//                  outbox relay, event consumer. Imports ERPCore, ERPWire, ERPStorage.
//   ERPResilience  breaker, retry, deadline budget, rate limiter, ResilienceSettings: pure logic on
//                  an injected clock. Imports ERPCore.
//   ERPReports     run summaries, latency histograms, per-method request metrics. Imports ERPCore.
//                  (On this floor, not at the top: the backends and the gateway record metrics.)
// 3. Services and configuration
//   ERPServices    the services, one folder each, each built from a ServiceContext, and the
//                  catalogue derived from their types. Imports ERPCore, ERPStorage, ERPTransport,
//                  ERPResilience; never a backend.
//   ERPConfiguration  strict YAML reading shared by scenario and topology files (file:line errors,
//                  the resilience and token-bucket blocks). Imports ERPCore, ERPResilience.
// 4. Backends: siblings that never import each other
//   ERPSimulation  the deterministic backend: SimWorld, network model, faults, trace. Imports
//                  ERPCore, ERPStorage, ERPTransport, ERPReports, ERPResilience (a node's rate limit).
//   CZeroMQ        <zmq.h> as a system library (pkg-config libzmq).
//   ZeroMQ         the libzmq wrapper: context, I/O threads, sockets, CURVE + ZAP, the executor
//                  that hosts them. No RPC, nothing of the ERP; imports only CZeroMQ.
//   ERPZeroMQ      the real backend: RPC over the wrapper (ZeroMQTransport, WireFormat,
//                  ZeroMQRuntime, SystemClock, FaultFilter). Imports ZeroMQ (re-exported), ERPCore,
//                  ERPWire, ERPStorage, ERPTransport, ERPReports, ERPResilience (the rate limit).
// 5. Scenario, its two backend adapters, and production
//   ERPScenario    scenario model and loader, the fault vocabulary and FaultInjector, the one
//                  ScenarioRunner over a ScenarioBackend, workload, checkers. Imports floors 1-3 and
//                  ERPConfiguration; no backend.
//   ERPGatewayHTTP the gateway's HTTP face: routes, API keys, error mapping, metrics. Imports
//                  ERPCore, ERPWire, ERPTransport, ERPServices, ERPReports, ERPResilience.
//   ERPProduction  topology files, CURVE keys, `erp serve` / `erp up`, supervisor, fault-control
//                  methods, the devices' door (DeviceIngress). Imports floors 1-3, ERPConfiguration, ERPZeroMQ, ERPGatewayHTTP; never
//                  ERPScenario or the simulator.
//   ERPSimulationBackend  the runner's simulation adapter (SimulationBackend, SimFaultInjector).
//                  Imports ERPScenario, ERPSimulation.
//   ERPZeroMQBackend  the runner's ZeroMQ adapter: supervised `erp serve` processes, the HTTP
//                  workload, ZeroMQFaultInjector. Imports ERPScenario, ERPProduction, ERPZeroMQ.
// 6. Benchmarks, the command line, test support
//   ERPBenchmarks  `erp bench`: the simulator's RPC mesh, the ZeroMQ transport vs raw libzmq.
//                  Imports both backends and what they stand on.
//   erp            the command line. Imports any library above.
//   ERPTestSupport what test targets share: package root, the erp binary (ERP_BINARY), fixtures,
//                  the HeavyWork gate, a scenario run on either backend. Linked only by tests.
//   ZeroMQTestSupport  socket helpers the wrapper's and the backend's tests share; imports ZeroMQ.
// Tests: one test target per library target, in the same order (ERPStorage and ERPReports have
// none of their own: ERPTransportTests and ERPCoreTests cover them; ERPConfiguration is covered
// through the scenario and topology loaders' tests); ERPTransportTests runs the transport
// contract on both backends, ERPScenarioTests every library scenario on both.
import PackageDescription

let package = Package(
    name: "retail-erp-testbed",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "erp", targets: ["erp"]),
        .executable(name: "erp-fuzz", targets: ["erp-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Already in the graph through Hummingbird; named for the workload's HTTP client.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Already in the graph through Hummingbird; named for the HTTP request parts our connection guard reads.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        // 1. Domain
        .target(name: "ERPWire"),
        .target(name: "ERPCore", dependencies: ["ERPWire"]),

        // 2. Storage, transport, resilience, reports
        .target(name: "ERPStorage", dependencies: [
            "ERPCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            // SQLite's C API, for the simulator's in-memory VFS.
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
            "CSQLiteTuning",
        ]),
        .systemLibrary(name: "CSQLiteTuning", path: "Sources/CSQLiteTuning"),
        .target(name: "ERPTransport", dependencies: [
            "ERPCore", "ERPWire", "ERPStorage",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Pure logic on an injected clock, random source and sleep, so the simulator can drive it.
        .target(name: "ERPResilience", dependencies: ["ERPCore"]),
        .target(name: "ERPReports", dependencies: ["ERPCore"]),

        // 3. Services: they see only ERPTransport's protocols, never a backend.
        .target(name: "ERPServices", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPResilience",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ERPConfiguration", dependencies: [
            "ERPCore", "ERPResilience",
            .product(name: "Yams", package: "Yams"),
        ]),

        // 4. Backends: ERPSimulation and ERPZeroMQ never import each other.
        .target(name: "ERPSimulation", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPReports", "ERPResilience",
            .product(name: "Collections", package: "swift-collections"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The system libzmq, through pkg-config; the apt provider names Debian's package.
        .systemLibrary(
            name: "CZeroMQ",
            path: "Sources/CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // glibc's <malloc.h>, for malloc_trim in the production host.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .target(name: "ZeroMQ", dependencies: [
            "CZeroMQ",
            .product(name: "DequeModule", package: "swift-collections"),
        ]),
        .target(name: "ERPZeroMQ", dependencies: [
            "ZeroMQ", "ERPCore", "ERPWire", "ERPStorage", "ERPTransport", "ERPReports", "ERPResilience",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // 5. Scenario and production
        .target(name: "ERPScenario", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPServices", "ERPReports", "ERPResilience", "ERPConfiguration",
            .product(name: "Yams", package: "Yams"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "ERPGatewayHTTP", dependencies: [
            "ERPCore", "ERPWire", "ERPTransport", "ERPServices", "ERPReports", "ERPResilience",
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"), .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ERPProduction", dependencies: [
            "CMalloc", "ERPCore", "ERPServices", "ERPStorage", "ERPZeroMQ", "ERPGatewayHTTP", "ERPTransport", "ERPConfiguration", "ERPReports", "ERPResilience",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ERPSimulationBackend", dependencies: [
            "ERPCore", "ERPScenario", "ERPServices", "ERPSimulation", "ERPStorage", "ERPTransport", "ERPReports", "ERPResilience",
        ]),
        .target(name: "ERPZeroMQBackend", dependencies: [
            "ERPCore", "ERPScenario", "ERPServices", "ERPProduction", "ERPZeroMQ", "ERPStorage", "ERPTransport", "ERPReports",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),

        // 6. Benchmarks and the command line
        .target(name: "ERPBenchmarks", dependencies: [
            "ERPCore", "ERPWire", "ERPTransport", "ERPSimulation", "ERPZeroMQ", "ZeroMQ", "CZeroMQ",
        ]),
        .executableTarget(name: "erp", dependencies: [
            "ERPCore", "ERPSimulation", "ERPScenario", "ERPReports", "ERPProduction", "ERPZeroMQ", "ERPServices", "ERPBenchmarks",
            "ERPSimulationBackend", "ERPZeroMQBackend", "ERPStorage", "ERPTransport", "ERPConfiguration", "CMalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
        ]),
        // Parsers of outside input as functions of bytes: libFuzzer targets and the corpus's test.
        .target(name: "ERPFuzzTargets", dependencies: [
            "ERPCore", "ERPWire", "ERPZeroMQ", "ERPScenario", "ERPProduction", "ERPGatewayHTTP", "ERPServices", "ERPSimulation", "ERPSimulationBackend",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .executableTarget(name: "erp-fuzz", dependencies: ["ERPFuzzTargets"]),
        .target(name: "ERPTestSupport", dependencies: ["ERPCore", "ERPReports", "ERPScenario", "ERPSimulationBackend", "ERPZeroMQBackend"]),

        // Tests, in the same order
        // HdrHistogram is the oracle for ERPReports' own latency histogram.
        .testTarget(name: "ERPCoreTests", dependencies: ["ERPCore", "ERPReports", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        .testTarget(name: "ERPWireTests", dependencies: ["ERPWire", "ERPCore"]),
        .testTarget(name: "ERPTransportTests", dependencies: [
            "ERPCore", "ERPResilience", "ERPStorage", "ERPTransport", "ERPSimulation", "ERPServices", "ERPZeroMQ", "ERPTestSupport",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ERPResilienceTests", dependencies: ["ERPCore", "ERPResilience"]),
        .testTarget(name: "ERPServicesTests", dependencies: ["ERPCore", "ERPServices", "ERPStorage", "ERPTransport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "ERPSimulationTests", dependencies: [
            "ERPCore", "ERPReports", "ERPTransport", "ERPSimulation", "ERPStorage", .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "ZeroMQTestSupport", dependencies: ["ZeroMQ"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ", "CZeroMQ", "ZeroMQTestSupport"]),
        .testTarget(name: "ERPZeroMQTests", dependencies: [
            "ERPZeroMQ", "ZeroMQ", "ERPCore", "ERPWire", "ERPTransport", "ERPStorage", "ZeroMQTestSupport",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ERPScenarioTests", dependencies: [
            "ERPCore", "ERPScenario", "ERPStorage", "ERPSimulation", "ERPSimulationBackend", "ERPReports", "ERPServices", "ERPResilience", "ERPTestSupport", "ERPProduction",
        ]),
        .testTarget(name: "ERPGatewayHTTPTests", dependencies: [
            "ERPCore", "ERPTransport", "ERPServices", "ERPGatewayHTTP", "ERPResilience",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "ERPProductionTests", dependencies: ["ERPFuzzTargets", "ERPWire", "ERPCore", "ERPProduction", "ERPStorage", "ERPZeroMQ", "ERPReports", "ERPTestSupport", "ERPServices", "ERPTransport", "ZeroMQ", "ZeroMQTestSupport"]),
        .testTarget(name: "ERPZeroMQBackendTests", dependencies: [
            "ERPCore", "ERPScenario", "ERPZeroMQBackend", "ERPZeroMQ", "ERPReports", "ERPTestSupport",
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "ERPBenchmarksTests", dependencies: ["ERPBenchmarks", "ZeroMQ", "ERPCore"]),
    ]
)
