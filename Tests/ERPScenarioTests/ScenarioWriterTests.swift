import ERPCore
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// What the writer writes, the loader reads back to the same scenario: the same text when written
/// again, and the same run (trace hash) as the file it came from.
@Suite struct ScenarioWriterTests {
    static let names = try! FileManager.default.contentsOfDirectory(atPath: packageRoot + "/scenarios")
        .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()

    @Test(arguments: names)
    func everyLibraryScenarioSurvivesARoundTrip(name: String) throws {
        let original = try library(name)
        let written = ScenarioWriter.yaml(original, header: ["written by a test"])
        let reread = try ScenarioLoader.parse(written, file: "\(name)-written.yaml")
        #expect(ScenarioWriter.yaml(reread, header: ["written by a test"]) == written)
        #expect(reread.faults.count == original.faults.count && reread.faults.map(\.kind) == original.faults.map(\.kind))
        #expect(reread.faults.map(\.at) == original.faults.map(\.at) && reread.faults.map(\.duration) == original.faults.map(\.duration))
    }

    @Test func theRereadScenarioRunsTheSameTrace() async throws {
        var original = try library("chaos-mix").scaled(toChaos: .seconds(4))
        original.heal = .seconds(6)
        var reread = try ScenarioLoader.parse(ScenarioWriter.yaml(original))
        reread.path = original.path
        let a = try await runInSimulation(original)
        let b = try await runInSimulation(reread)
        #expect(a.traceHash != nil && a.traceHash == b.traceHash)
    }
}
