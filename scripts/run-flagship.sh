#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the flagship scenario in simulation.
# Reports go to reports/<scenario>-seed<N>/ (summary.json, summary.md, trace.log).
# Extra arguments go to `erp run` (e.g. --seed 42, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product erp
.build/release/erp run scenarios/happy-path.yaml "$@"
