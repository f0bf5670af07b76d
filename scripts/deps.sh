#!/bin/bash
# Installs everything Halo needs to build, test and run the demo on Debian 12 (run as root).
# Extra package names given as arguments are installed too (the benchmarks' deps.sh use this).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential cmake ninja-build pkg-config git
  libpugixml-dev nlohmann-json3-dev libcli11-dev libsqlite3-dev libzip-dev libssl-dev
  libgtest-dev libgmock-dev libfuse3-dev fuse3 libxxhash-dev
  sqlite3 attr fio
  iproute2 procps curl zip unzip python3 socat
  "$@"
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
