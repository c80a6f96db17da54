#!/usr/bin/env bash
# Runs the whole test suite RUNS times in a row beside HOGS busy loops that take the CPU, to find
# the tests whose verdict depends on how fast the machine is. Stops at the first failing run and
# keeps every run's log in .build/stress/. Usage: scripts/stress-tests.sh [RUNS=10] [HOGS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
runs=${1:-10}
hogs=${2:-2}
[[ $runs =~ ^[0-9]+$ && $hogs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "usage: $0 [RUNS>=1] [HOGS>=0]" >&2; exit 1; }

scripts/install-deps.sh
swift build --build-tests
logs=.build/stress
mkdir -p "$logs"

hog_pids=()
stop_hogs() { ((${#hog_pids[@]})) && kill "${hog_pids[@]}" 2>/dev/null || true; }
trap stop_hogs EXIT
for ((i = 0; i < hogs; i++)); do
  ( while :; do :; done ) &
  hog_pids+=($!)
done

for ((run = 1; run <= runs; run++)); do
  log="$logs/run-$run.log"
  started=$(date +%s)
  if swift test --skip-build >"$log" 2>&1; then verdict=passed; else verdict=FAILED; fi
  line=$(grep -E "Test run with .* (passed|failed)" "$log" | tail -1 || true)
  echo "run $run/$runs ($hogs hogs): $verdict in $(( $(date +%s) - started ))s: ${line:-no Swift Testing summary line}"
  if [[ $verdict == FAILED ]]; then
    grep -E "✘|error:|Fatal error" "$log" | head -20
    echo "log: $log"
    exit 1
  fi
done
echo "$runs runs in a row passed beside $hogs hogs"
