import ERPFuzzTargets
import ERPTestSupport
import Foundation
import Testing

/// The fuzz targets over the checked-in corpus (fuzz/corpus/TARGET/: seeds, and every input a
/// fuzzing run found a problem with): each input runs through its parser and returns. A finding
/// that traps comes back here as a crash of the test run. The inputs run on a thread of their own:
/// the `http` target blocks its thread while it runs its simulated world.
@Suite struct FuzzCorpusTests {
    @Test(arguments: FuzzTargets.all.map(\.name))
    func everyCorpusInputReturns(target: String) async throws {
        FuzzTargets.useFixtures(packageRoot + "/fixtures/retail.json")
        let folder = packageRoot + "/fuzz/corpus/" + target
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(!files.isEmpty, "no corpus for \(target)")
        let run = try #require(FuzzTargets.named(target))
        let inputs = try files.map { try #require(FileManager.default.contents(atPath: folder + "/" + $0)) }
        try await onThreadOfItsOwn { for data in inputs { run([UInt8](data)) } }
    }
}
