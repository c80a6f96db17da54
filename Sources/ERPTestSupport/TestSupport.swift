// ERPTestSupport: what every test target shares: where the package and the erp binary are, the
// fixtures, running the erp binary as a separate process, and a scenario run in simulation.
// Linked only by test targets.
import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import Foundation

/// The package's root folder, found from this file's path (Sources/ERPTestSupport/…).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The erp binary the cross-process tests run: `$ERP_BINARY` when set (a release build, another
/// build folder), else the debug build's. The one place that knows where it is.
public var erpBinary: String {
    ProcessInfo.processInfo.environment["ERP_BINARY"] ?? packageRoot + "/.build/debug/erp"
}

/// The fixtures every library scenario uses.
public func loadFixtures() throws -> Fixtures {
    try JSONCoding.decode(Fixtures.self, from: Data(contentsOf: URL(fileURLWithPath: packageRoot + "/fixtures/retail.json")))
}

/// A library scenario, by name.
public func library(_ name: String) throws -> Scenario {
    try ScenarioLoader.load(path: packageRoot + "/scenarios/" + name + ".yaml")
}

/// A fresh folder under the temporary directory (the caller removes it).
public func scratchDirectory(_ label: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("erp-\(label)-\(UInt64.random(in: 0...UInt64.max))").path
}

/// Runs `scenario` in simulation (its own seed unless given) and returns the summary; the report
/// folder is removed afterwards. The world computes on a thread of its own.
public func runInSimulation(_ scenario: Scenario, seed: UInt64? = nil) async throws -> RunSummary {
    let out = scratchDirectory("run-\(scenario.name)")
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: out) }
    let seed = seed ?? scenario.seed
    let backend = try SimulationBackend(scenario: scenario, seed: seed, fixtures: try loadFixtures(), outputDirectory: out)
    let runner = ScenarioRunner(scenario: scenario, fixtures: try loadFixtures(), seed: seed, outputDirectory: out,
                                reproduce: "erp run \(scenario.name) --seed \(seed)")
    return try await runner.run(on: backend)
}

/// What a finished erp process left.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var output: String
}

/// Runs the erp binary with `arguments` in the package's root and waits for it on a thread of its
/// own (blocking one of the cooperative pool's threads for half a minute starves other tests).
/// Standard output and error are collected together.
public func runErp(_ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
    guard FileManager.default.isExecutableFile(atPath: erpBinary) else {
        throw TestSupportError("no erp binary at \(erpBinary): build it first (swift build) or set ERP_BINARY")
    }
    let log = scratchDirectory("process") + ".log"
    FileManager.default.createFile(atPath: log, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: log) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: erpBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    process.standardOutput = FileHandle(forWritingAtPath: log)
    process.standardError = process.standardOutput
    try process.run()
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        Thread { process.waitUntilExit(); done.resume() }.start()
    }
    return ProcessResult(status: process.terminationStatus,
                         output: String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
