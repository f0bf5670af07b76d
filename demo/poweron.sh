#!/bin/bash
# Boots a demo node again after demo/poweroff.sh: link up, halod, then the module (it joins as
# secondary when its peer is primary).
set -euo pipefail
cd "$(dirname "$0")/.."
node=${1:?usage: demo/poweron.sh n1|n2}
ip -n "halo-demo-$node" link set eth0 up
demo/halo "$node" --daemon
demo/halo "$node" start -m web
demo/halo "$node" waitstart -m web -t 60 || true
demo/halo "$node" state -m web
