#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine (as root): libzmq and SQLite headers;
# with --test also what the test suite needs (Chromium, which renders report.html headless).
# Does nothing when they are already there.
set -euo pipefail
packages=(libzmq3-dev libsqlite3-dev pkg-config)
if [[ "${1:-}" == "--test" ]]; then packages+=(chromium); fi
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  apt-get update
  apt-get install -y "${need[@]}"
fi
