#!/usr/bin/env bash
# Runs one libFuzzer target for a while: scripts/fuzz.sh TARGET [SECONDS] [more libFuzzer flags]
# Targets: wire, json, device, scenario, topology, http (Sources/ERPFuzzTargets).
# The fuzz build lives in .build-fuzz: every module instrumented by -sanitize=fuzzer, -D FUZZING
# selecting erp-fuzz's libFuzzer entry points. libFuzzer's own main and SwiftPM's alias of main to
# the executable's entry point both define `main`; --allow-multiple-definition lets the link keep
# one, and erp-fuzz serves either (LLVMFuzzerTestOneInput, or LLVMFuzzerRunDriver from its entry).
# New interesting inputs go to .build-fuzz/corpus/TARGET, crashes to .build-fuzz/findings/TARGET.
# Replay one with `swift run erp-fuzz TARGET FILE`; once fixed, copy it into fuzz/corpus/TARGET,
# which the normal suite runs (FuzzCorpusTests).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]  (wire, json, device, scenario, topology, http)}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
case "$target" in wire|json|device|scenario|topology|http) ;; *) echo "unknown target '$target'" >&2; exit 1 ;; esac
swift build --build-path .build-fuzz --product erp-fuzz \
  -Xswiftc -sanitize=fuzzer -Xswiftc -D -Xswiftc FUZZING -Xlinker --allow-multiple-definition >&2
mkdir -p ".build-fuzz/corpus/$target" ".build-fuzz/findings/$target"
# The repository's corpus is read from a copy: libFuzzer may write into any corpus folder it is given.
rm -rf ".build-fuzz/seeds/$target" && mkdir -p ".build-fuzz/seeds" && cp -R "fuzz/corpus/$target" ".build-fuzz/seeds/$target"
ERP_FUZZ_TARGET="$target" .build-fuzz/debug/erp-fuzz \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 \
  -artifact_prefix=".build-fuzz/findings/$target/" "$@" \
  ".build-fuzz/corpus/$target" ".build-fuzz/seeds/$target"
