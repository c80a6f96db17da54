import ERPFuzzTargets
import ERPTestSupport
import Foundation
import Testing

/// The fuzz targets over the checked-in corpus (fuzz/corpus/TARGET/: seeds, and every input a
/// fuzzing run found a problem with): each input runs through its parser and returns. A finding
/// that traps comes back here as a crash of the test run.
@Suite struct FuzzCorpusTests {
    @Test(arguments: FuzzTargets.all.map(\.name))
    func everyCorpusInputReturns(target: String) throws {
        let folder = packageRoot + "/fuzz/corpus/" + target
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(!files.isEmpty, "no corpus for \(target)")
        let run = try #require(FuzzTargets.named(target))
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: folder + "/" + file))
            run([UInt8](data))
        }
    }
}
