#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the flagship scenario in simulation.
# Reports go to reports/<scenario>-seed<N>/ (summary.json, summary.md, trace.log).
# Extra arguments go to `erp run` (e.g. --seed 42, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A debug build: it is the one the test suite shares, and the simulation needs no more.
swift build --product erp
.build/debug/erp run scenarios/happy-path.yaml "$@"
