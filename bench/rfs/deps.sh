#!/usr/bin/env bash
# Packages needed by the rfs benchmark (Debian 12), installed only when missing: bindfs (a FUSE
# reference).  fuse3, libfuse3-dev (passthrough_ll's sources and headers) and tar are already
# needed by the project (scripts/deps.sh).
set -euo pipefail
missing=()
for pkg in bindfs; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
	echo "bench/rfs deps: nothing to install"
	exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
