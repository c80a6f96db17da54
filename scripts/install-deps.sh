#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine (as root): libzmq and SQLite headers;
# with --test also what the test suite needs (Chromium, which renders report.html headless, and
# Python's ZeroMQ binding, with which examples/python/place_order.py speaks erp/2 to a live system).
# Does nothing when they are already there.
set -euo pipefail
packages=(libzmq3-dev libsqlite3-dev pkg-config)
if [[ "${1:-}" == "--test" ]]; then packages+=(chromium python3-zmq); fi
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  apt-get update
  apt-get install -y "${need[@]}"
fi
