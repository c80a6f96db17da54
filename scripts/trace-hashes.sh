#!/usr/bin/env bash
# Writes scenarios/trace-hashes.txt: the trace hash each library scenario gives in simulation at
# its own seed. The test suite runs every library scenario in its own process and compares: a
# hash that moved is behaviour that changed (or a run that depends on its process). When the
# change is meant, run this and say in the commit why the traces moved.
# ERP=path picks the binary (default .build/debug/erp; a release build gives the same hashes).
set -euo pipefail
cd "$(dirname "$0")/.."
ERP=${ERP:-.build/debug/erp}
[ -x "$ERP" ] || { echo "no $ERP: build it (swift build) or set ERP=path" >&2; exit 1; }
scratch=$(mktemp -d /tmp/erp-trace-hashes.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
out=$scratch/trace-hashes.txt
sqlite=""
{
  echo "# The trace hash of each library scenario in simulation at its own seed (erp run scenarios/NAME.yaml),"
  echo "# compared by the test suite (ScenarioLibraryTests, DiskFaultScenarioTests). Written by scripts/trace-hashes.sh."
} > "$out"
lines=""
for file in scenarios/*.yaml; do
  name=$(basename "$file" .yaml)
  "$ERP" run "$file" --out "$scratch/run" > "$scratch/run.log" 2>&1 || true
  hash=$(grep -E '^trace hash: ' "$scratch/run.log" | awk '{print $3}')
  [ -n "$hash" ] || { echo "$name: no trace hash; its output:" >&2; tail -20 "$scratch/run.log" >&2; exit 1; }
  sqlite=$(grep -o '"sqliteVersion" *: *"[^"]*"' "$scratch/run/summary.json" | sed 's/.*"\([^"]*\)"$/\1/')
  lines+="$name $hash"$'\n'
  echo "$name $hash"
done
{
  echo "# SQLite $sqlite: written on this SQLite; on another, power-loss is not compared (its trace counts SQLite's own writes)."
  echo "sqlite $sqlite"
  printf '%s' "$lines"
} >> "$out"
mv "$out" scenarios/trace-hashes.txt
echo "wrote scenarios/trace-hashes.txt"
