#!/usr/bin/env bash
# Compares two builds of erp on one simulated scenario, both at once: each pair runs
# `erp bench scenario` with the two binaries at the same time, each pinned to a core of its own
# (cores swapped from one pair to the next), so that both see the same moment of the machine.
# Prints each pair's CPU per order and the ratio B/A, then the median ratio. How much that helps
# depends on the machine: on the shared 2-core one, one binary against itself spread 0.84 - 1.06
# in four pairs, so a change of a few per cent needs many pairs to show.
#
#   scripts/ab-scenario.sh A_ERP B_ERP [PAIRS] -- BENCH-SCENARIO-ARGUMENTS
#   scripts/ab-scenario.sh .build-old/release/erp .build/release/erp 4 -- scenarios/happy-path.yaml --rate 200 --stock 100
#
# Needs two cores (taskset, from util-linux) and python3. The two runs must give the same trace
# hash when the builds should behave the same: the script says when they do not.
set -euo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
[ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ] && { usage; exit 0; }
[ $# -ge 3 ] || { usage >&2; exit 1; }
a=$1; b=$2; shift 2
pairs=4
if [ "$1" != "--" ]; then pairs=$1; shift; fi
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "ab-scenario: PAIRS must be a whole number above 0, not $pairs" >&2; exit 1; }
[ "${1:-}" = "--" ] || { echo "ab-scenario: the bench's arguments follow --" >&2; exit 1; }
shift
for erp in "$a" "$b"; do [ -x "$erp" ] || { echo "ab-scenario: no executable $erp" >&2; exit 1; }; done
[ "$(nproc)" -ge 2 ] || { echo "ab-scenario: needs two cores (this machine has $(nproc))" >&2; exit 1; }
command -v taskset > /dev/null || { echo "ab-scenario: needs taskset (util-linux)" >&2; exit 1; }
scratch=$(mktemp -d /tmp/erp-ab.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then ca=0; cb=1; else ca=1; cb=0; fi
  taskset -c $ca "$a" bench scenario "$@" --json > "$scratch/a.out" 2> "$scratch/a.err" &
  pa=$!
  taskset -c $cb "$b" bench scenario "$@" --json > "$scratch/b.out" 2> "$scratch/b.err" &
  pb=$!
  # Exit 4 (an expectation failed) still prints the figures: a run failed when its last line is
  # not the figures' JSON, whatever its exit status.
  wait $pa || true
  wait $pb || true
  for side in a b; do
    tail -1 "$scratch/$side.out" | python3 -c 'import json,sys; json.load(sys.stdin)' 2> /dev/null || {
      echo "ab-scenario: run $side of pair $i printed no figures:" >&2; tail -5 "$scratch/$side.err" "$scratch/$side.out" >&2; exit 1; }
  done
  tail -1 "$scratch/a.out" > "$scratch/a.json"
  tail -1 "$scratch/b.out" > "$scratch/b.json"
  python3 - "$scratch" "$i" <<'PY'
import json, sys
scratch, pair = sys.argv[1], sys.argv[2]
a = json.load(open(f"{scratch}/a.json")); b = json.load(open(f"{scratch}/b.json"))
ratio = b["cpu_ms_per_order"] / a["cpu_ms_per_order"]
open(f"{scratch}/ratios", "a").write(f"{ratio}\n")
same = "same trace" if a["trace_hash"] == b["trace_hash"] else f"TRACES DIFFER ({a['trace_hash'][:8]} / {b['trace_hash'][:8]})"
print(f"pair {pair}: A {a['cpu_ms_per_order']:.3f} ms, B {b['cpu_ms_per_order']:.3f} ms of CPU an order; B/A {ratio:.3f}; "
      f"invariants {a['invariants_pass']} / {b['invariants_pass']}; {same}")
PY
done
python3 - "$scratch" <<'PY'
import sys
ratios = sorted(float(x) for x in open(f"{sys.argv[1]}/ratios"))
m = len(ratios) // 2
median = ratios[m] if len(ratios) % 2 else (ratios[m - 1] + ratios[m]) / 2
pairs = f"{len(ratios)} pair" + ("" if len(ratios) == 1 else "s")
print(f"B/A, CPU per order: median {median:.3f} (from {ratios[0]:.3f} to {ratios[-1]:.3f}, {pairs})")
PY
