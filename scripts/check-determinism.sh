#!/usr/bin/env bash
# Fails when code the simulator must control takes time, randomness or threads from anywhere but
# its Runtime. The same rule runs as a Swift test (DeterminismLintTests); this is the fast gate.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='Date\(\)|Task\.sleep|UUID\(\)|\.random\(|Task *\{|Task\.detached|DispatchQueue|Thread\b|@MainActor|ContinuousClock'
dirs=()
for d in Sources/ERPServices Sources/ERPStorage Sources/ERPResilience Sources/ERPTransport; do [[ -d $d ]] && dirs+=("$d"); done
hits=$(grep -rnE "$pattern" "${dirs[@]}" | awk -F: '{l=$0; sub(/^[^:]*:[^:]*:/,"",l); if (l !~ /^[ \t]*\/\//) print}' || true)
if [[ -n $hits ]]; then
  echo "determinism check failed: ambient time, randomness or threads in simulated code:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "determinism check: ${dirs[*]} take time, randomness and tasks only from the runtime"
