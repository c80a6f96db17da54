#!/usr/bin/env bash
# Fails when code the simulator must control takes time, randomness, ids, sleeps, threads or new
# tasks from anywhere but its Runtime. DeterminismLintTests reads the pattern and the paths from
# this file and runs the same rule in the test suite; this is the fast gate. A line that must do
# so (the simulator's own task spawning, production's random source) says why in a comment
# holding "determinism-exempt:". Dictionary and set order is not something a pattern can see: the
# library scenarios' recorded trace hashes (scenarios/trace-hashes.txt), compared by a test in a
# process whose hashing is seeded its own way, catch a trace that depends on it.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='Date\(\)|Date\.now|Date\(timeInterval|CFAbsoluteTimeGetCurrent|Task\.sleep|UUID\(\)|\.random\(|\.randomElement\(|\.shuffled?\(|SystemRandomNumberGenerator|arc4random|(^|[^A-Za-z0-9_])Task *[{(]|Task\.detached|Dispatch(Queue|Time|Semaphore|Group)|(^|[^A-Za-z0-9_])Thread([^A-Za-z0-9_]|$)|pthread_create|@MainActor|ContinuousClock|SuspendingClock|clock_gettime|gettimeofday|(^|[^.A-Za-z0-9_])(usleep|nanosleep|sleep\([0-9])|ProcessInfo|getpid\(|\.hashValue|async let|with(Throwing)?(Discarding)?TaskGroup'
paths=(Sources/ERPServices Sources/ERPStorage Sources/ERPResilience Sources/ERPTransport Sources/ERPCore Sources/ERPSimulation
       Sources/ERPScenario/OrderWorkloadClient.swift Sources/ERPScenario/DeviceWorkloadClient.swift Sources/ERPScenario/StoreWorkloadClient.swift)
existing=()
for p in "${paths[@]}"; do [[ -e $p ]] && existing+=("$p"); done
hits=$(grep -rnE "$pattern" "${existing[@]}" | awk -F: '{l=$0; sub(/^[^:]*:[^:]*:/,"",l); if (l !~ /^[ \t]*\/\// && l !~ /determinism-exempt:/) print}' || true)
if [[ -n $hits ]]; then
  echo "determinism check failed: ambient time, randomness, ids, sleeps, threads or tasks in simulated code:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "determinism check: ${existing[*]} take time, randomness, sleeps and tasks only from the runtime"
