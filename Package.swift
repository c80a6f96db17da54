// swift-tools-version: 6.1
// The dependency direction is the architecture:
//   ERPCore ← ERPStorage ← ERPTransport ← ERPServices
//   ERPSimulation imports ERPTransport (never a service, never another backend)
//   ERPResilience imports only ERPCore: breakers and retries decide, callers do the I/O.
//   ERPScenario wires services onto a backend; erp is the command line.
// Services never import a backend: ERPServices lists neither ERPSimulation nor any other backend.
import PackageDescription

let package = Package(
    name: "retail-erp-testbed",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "erp", targets: ["erp"]),
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
    ],
    targets: [
        // Domain types, RPC contracts, event envelope and payloads, money, ids,
        // Clock / RandomSource protocols. No I/O.
        .target(name: "ERPCore"),
        // WireJSON: the JSON of RPC headers and bodies on a real wire. Imports nothing.
        .target(name: "ERPWire"),
        // SQLite through GRDB: per-service databases, migrations, outbox, inbox.
        .target(name: "ERPStorage", dependencies: [
            "ERPCore",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // The abstract transport and the Runtime handed to every service.
        .target(name: "ERPTransport", dependencies: [
            "ERPCore", "ERPWire", "ERPStorage",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The services. They see only ERPTransport's protocols, never a backend.
        .target(name: "ERPServices", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPResilience",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The deterministic backend: SimWorld, virtual clock, network model, faults, trace.
        .target(name: "ERPSimulation", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPReports",
            .product(name: "Collections", package: "swift-collections"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Circuit breaker, retry policy, deadline budget, rate limiter: pure logic on an
        // injected clock, random source and sleep, so the simulator can drive it.
        .target(name: "ERPResilience", dependencies: ["ERPCore"]),
        // Latency and consistency reports.
        .target(name: "ERPReports", dependencies: [
            "ERPCore",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        // Scenario model + YAML loader, workload, fault schedule, runner, checkers.
        .target(name: "ERPScenario", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPServices", "ERPSimulation", "ERPReports", "ERPResilience",
            .product(name: "Yams", package: "Yams"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // The system libzmq, through pkg-config; the apt provider names Debian's package.
        .systemLibrary(
            name: "CZeroMQ",
            path: "Sources/CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // A thin libzmq wrapper (one I/O thread per group of sockets, CURVE + ZAP). No RPC.
        .target(name: "ZeroMQ", dependencies: [
            "CZeroMQ",
            .product(name: "DequeModule", package: "swift-collections"),
        ]),
        // The real backend on the wrapper: ZeroMQTransport, ZeroMQRuntime, SystemClock.
        // Sibling of ERPSimulation; the two never import each other.
        .target(name: "ERPZeroMQ", dependencies: [
            "ZeroMQ", "ERPCore", "ERPWire", "ERPStorage", "ERPTransport", "ERPReports",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Benchmarks that print figures: the simulator's RPC mesh, the ZeroMQ transport vs raw libzmq.
        .target(name: "ERPBenchmarks", dependencies: [
            "ERPCore", "ERPWire", "ERPTransport", "ERPSimulation", "ERPZeroMQ", "ZeroMQ", "CZeroMQ",
        ]),
        .executableTarget(name: "erp", dependencies: [
            "ERPCore", "ERPSimulation", "ERPScenario", "ERPReports", "ERPProduction", "ERPZeroMQ", "ERPServices", "ERPBenchmarks",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // The gateway's HTTP face (production mode): routes, API keys, error mapping, metrics.
        .target(name: "ERPGatewayHTTP", dependencies: [
            "ERPCore", "ERPWire", "ERPTransport", "ERPServices", "ERPReports", "ERPResilience",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        // Production mode: topology files, CURVE keys, serving one service, supervising them all.
        .target(name: "ERPProduction", dependencies: [
            "ERPCore", "ERPServices", "ERPZeroMQ", "ERPGatewayHTTP", "ERPTransport", "ERPScenario", "ERPReports", "ERPResilience",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .testTarget(name: "ERPProductionTests", dependencies: ["ERPCore", "ERPProduction", "ERPZeroMQ", "ERPScenario", "ERPReports", "ERPSimulation"]),
        .testTarget(name: "ERPGatewayHTTPTests", dependencies: [
            "ERPCore", "ERPTransport", "ERPServices", "ERPGatewayHTTP", "ERPResilience",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),

        .testTarget(name: "ERPCoreTests", dependencies: ["ERPCore", "ERPReports"]),
        .testTarget(name: "ERPWireTests", dependencies: ["ERPWire", "ERPCore"]),
        .testTarget(name: "ERPResilienceTests", dependencies: ["ERPCore", "ERPResilience"]),
        .testTarget(name: "ERPServicesTests", dependencies: ["ERPCore", "ERPServices"]),
        .testTarget(name: "ERPSimulationTests", dependencies: ["ERPCore", "ERPTransport", "ERPSimulation"]),
        .testTarget(name: "ERPTransportTests", dependencies: [
            "ERPCore", "ERPStorage", "ERPTransport", "ERPSimulation", "ERPServices", "ERPZeroMQ",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "ERPScenarioTests", dependencies: [
            "ERPCore", "ERPScenario", "ERPSimulation", "ERPReports", "ERPServices", "ERPResilience",
        ]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ", "CZeroMQ"]),
        .testTarget(name: "ERPZeroMQTests", dependencies: ["ERPZeroMQ", "ZeroMQ", "ERPCore", "ERPWire", "ERPTransport"]),
        .testTarget(name: "ERPBenchmarksTests", dependencies: ["ERPBenchmarks", "ZeroMQ", "ERPCore"]),
    ]
)
