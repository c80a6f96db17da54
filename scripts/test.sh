#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks determinism hygiene, builds everything
# (the cross-process tests run the erp binary), then runs `swift test`, whose output ends the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/check-determinism.sh
swift build --build-tests
swift test
