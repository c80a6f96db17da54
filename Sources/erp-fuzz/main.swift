// erp-fuzz: the fuzz targets of ERPFuzzTargets.
//
// Built normally, it runs inputs through a target: `erp-fuzz TARGET FILE…` (a corpus, a crash
// libFuzzer wrote), so a finding can be replayed under the debugger without the fuzzer.
// Built by scripts/fuzz.sh (`-sanitize=fuzzer -parse-as-library -D FUZZING`), libFuzzer drives
// `LLVMFuzzerTestOneInput` and ERP_FUZZ_TARGET names the target.
import ERPFuzzTargets
import Foundation

#if FUZZING
nonisolated(unsafe) private var selected: (@Sendable ([UInt8]) -> Void)?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    if selected == nil {
        let name = ProcessInfo.processInfo.environment["ERP_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTargets.named(name) else {
            FileHandle.standardError.write(Data("ERP_FUZZ_TARGET must be one of: \(FuzzTargets.all.map(\.name).joined(separator: ", "))\n".utf8))
            exit(1)
        }
        selected = target
    }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    selected!(bytes)
    return 0
}
#else
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
#endif
