#!/usr/bin/env bash
# Packages needed by the failover benchmark (Debian 12), installed only when
# missing: keepalived (the product compared with Halo) and stress-ng (the
# "no false failover under stress" run).  python3, zip and iproute2 are
# already needed by the project.
set -euo pipefail
missing=()
for pkg in keepalived stress-ng; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
	echo "bench/failover deps: nothing to install"
	exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
