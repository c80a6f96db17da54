#!/usr/bin/env bash
# The performance issue's production check in one sitting, on this machine:
#   1. erp bench e2e: every service as a process, open-loop POST /orders at RATE for SECONDS,
#      timed from each order's intended send, the invariants judged from the databases after;
#   2. wrk (closed loop, 16 connections) for SECONDS against erp up on the shipped topology with
#      its rate limits lifted and the stock multiplied by 100, as bench e2e runs it;
#   3. erp check on erp up's databases, after the load settled and erp up stopped.
# Usage: scripts/production-sitting.sh [RATE] [SECONDS]   (default 500 orders/s, 10 s)
# ERP=path picks the binary (default .build/release/erp: build it with swift build -c release).
# Needs wrk (apt-get install -y wrk) and the gateway's port (8080) free. Exit status 0 when
# everything ran and both judgements held, 2 when one failed, 1 when something could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
ERP=${ERP:-.build/release/erp}
RATE=${1:-500}
LENGTH=${2:-10}
[ -x "$ERP" ] || { echo "no $ERP: build it (swift build -c release) or set ERP=path" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
if curl -s -o /dev/null --max-time 1 http://127.0.0.1:8080/health; then
  echo "something already answers on 127.0.0.1:8080 (another erp up?): stop it first" >&2; exit 1
fi
work=$(mktemp -d /tmp/erp-sitting.XXXXXX)
status=0
echo "== $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg); reports in $work"

echo "== 1. erp bench e2e --rate $RATE --duration ${LENGTH}s"
"$ERP" bench e2e --rate "$RATE" --duration "${LENGTH}s" --out "$work/e2e" --json | tee "$work/e2e.txt" || status=2
grep -q '"invariants_pass":true' "$work/e2e.txt" || status=2

echo "== 2. wrk -t2 -c16 -d${LENGTH}s against erp up --stock 100 --no-rate-limits"
"$ERP" up --stock 100 --no-rate-limits --data "$work/up" > "$work/up.log" 2>&1 &
up=$!
stop_up() { kill -TERM "$up" 2>/dev/null && wait "$up" 2>/dev/null || true; }
trap stop_up EXIT
for _ in $(seq 1 120); do
  curl -s -o /dev/null --max-time 1 http://127.0.0.1:8080/health && break
  kill -0 "$up" 2>/dev/null || { echo "erp up stopped; its log:" >&2; tail -20 "$work/up.log" >&2; exit 1; }
  sleep 0.5
done
wrk -t2 -c16 -d"${LENGTH}s" --latency -s scripts/wrk-orders.lua http://127.0.0.1:8080 | tee "$work/wrk.txt"
# Orders and events still in flight when the load stops settle before erp up is stopped: a
# system stopped mid-flight is judged unsettled.
sleep 5
stop_up
trap - EXIT

echo "== 3. erp check $work/up"
"$ERP" check "$work/up" || status=2
exit $status
