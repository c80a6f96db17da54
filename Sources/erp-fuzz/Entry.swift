// erp-fuzz: runs inputs through one of ERPFuzzTargets' targets, `erp-fuzz TARGET FILE…`, so that
// an input (a corpus file, a finding) can be replayed, under a debugger if need be. The normal
// test suite runs the checked-in corpus the same way (FuzzCorpusTests).
//
// Not yet a libFuzzer binary: with this toolchain, `-sanitize=fuzzer` links libFuzzer's own
// `main`, which collides with the alias SwiftPM makes from `main` to an executable's entry point
// (`erp_fuzz_main`), and the link fails. The way out is coverage-only instrumentation plus
// libclang_rt.fuzzer_no_main, with `LLVMFuzzerRunDriver` called from here; not done yet.
import ERPFuzzTargets
import Foundation

@main
struct CorpusReplayer {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTargets.named(name), arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: erp-fuzz TARGET FILE…   (targets: \(FuzzTargets.all.map(\.name).joined(separator: ", ")))\n".utf8))
            exit(1)
        }
        for path in arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("erp-fuzz: cannot read \(path)\n".utf8))
                exit(1)
            }
            target([UInt8](data))
            print("\(path): ok")
        }
    }
}
