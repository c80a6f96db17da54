// erp-fuzz: the fuzz targets of ERPFuzzTargets.
//
// Built normally it replays inputs through a target, `erp-fuzz TARGET FILE…` (a corpus, a finding),
// under a debugger if need be; the normal test suite runs the checked-in corpus the same way
// (FuzzCorpusTests). Built by scripts/fuzz.sh (`-sanitize=fuzzer -D FUZZING`, linked with
// `--allow-multiple-definition`) it is a libFuzzer binary and ERP_FUZZ_TARGET names the target.
// libFuzzer's `main` and SwiftPM's alias of `main` to this executable's entry point
// (`erp_fuzz_main`) both exist then; whichever the link keeps works: libFuzzer's calls
// `LLVMFuzzerTestOneInput`, ours hands over to `LLVMFuzzerRunDriver`.
import ERPFuzzTargets
import Foundation

#if FUZZING
nonisolated(unsafe) private var selected: (@Sendable ([UInt8]) -> Void)?

private func selectTarget() -> @Sendable ([UInt8]) -> Void {
    if let selected { return selected }
    let name = ProcessInfo.processInfo.environment["ERP_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTargets.named(name) else {
        FileHandle.standardError.write(Data("ERP_FUZZ_TARGET must be one of: \(FuzzTargets.all.map(\.name).joined(separator: ", "))\n".utf8))
        exit(1)
    }
    selected = target
    return target
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selectTarget()(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(_ argc: UnsafeMutablePointer<CInt>,
                       _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                       _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("erp_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = selectTarget()
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#else
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
#endif
