#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine (as root): libzmq and SQLite headers.
# Does nothing when they are already there.
set -euo pipefail
need=()
for pkg in libzmq3-dev libsqlite3-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  apt-get update
  apt-get install -y "${need[@]}"
fi
